//! The numerical functions in the simulated fixed-point setting against f64 (`--nocapture`
//! prints the errors).

use mpc_core::transport::Role;
use mpc_nn::{Backend, Fixed, Plain};

fn grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect()
}

/// Runs `op` in Fixed and Plain and returns (max abs err, max rel err).
macro_rules! compare {
    ($xs:expr, |$b:ident, $x:ident| $body:expr) => {{
        let xs: &[f64] = $xs;
        let mut fixed = Fixed::default();
        let got = {
            let $b = &mut fixed;
            let $x = $b.input(Role::P0, Some(xs), xs.len()).unwrap();
            let out = $body.unwrap();
            $b.reveal(&out).unwrap()
        };
        let mut plain = Plain::<f64>::new();
        let expect = {
            let $b = &mut plain;
            let $x = $b.input(Role::P0, Some(xs), xs.len()).unwrap();
            $body.unwrap()
        };
        let abs = got.iter().zip(&expect).map(|(g, e)| (g - e).abs()).fold(0.0, f64::max);
        let rel = got.iter().zip(&expect).map(|(g, e)| ((g - e) / e).abs()).fold(0.0, f64::max);
        (abs, rel)
    }};
}

#[test]
fn simulated_functions_meet_their_bounds() {
    let (a, r) = compare!(&grid(1.0 / 64.0, 64.0, 4001), |b, x| b.reciprocal(&x));
    println!("reciprocal abs {a:e} rel {r:e}");
    assert!(r <= 1e-3);
    let (a, r) = compare!(&grid(1e-2, 1e3, 4001), |b, x| b.inv_sqrt(&x));
    println!("inv_sqrt abs {a:e} rel {r:e}");
    assert!(r <= 5e-3);
    let (a, _) = compare!(&grid(-64.0, 0.0, 4001), |b, x| b.exp(&x));
    println!("exp abs {a:e}");
    assert!(a <= 1e-3);
    let (a, _) = compare!(&grid(-1000.0, 1000.0, 8001), |b, x| b.gelu(&x));
    println!("gelu wide abs {a:e}");
    let (a2, _) = compare!(&grid(-6.0, 6.0, 4001), |b, x| b.gelu(&x));
    println!("gelu core abs {a2:e}");
    assert!(a <= 1e-2 && a2 <= 1e-2);
    let (a, _) = compare!(&grid(-10.0, 10.0, 4001), |b, x| b.erf(&x));
    println!("erf abs {a:e}");
    let (a, _) = compare!(&grid(-10.0, 10.0, 4001), |b, x| b.tanh(&x));
    println!("tanh abs {a:e}");
    let (a, _) = compare!(&grid(-10.0, 10.0, 4001), |b, x| b.sigmoid(&x));
    println!("sigmoid abs {a:e}");
    for len in [8usize, 128, 512] {
        let xs: Vec<f64> = (0..4 * len).map(|i| ((i * 7919 % 1000) as f64 / 10.0) - 50.0).collect();
        let (a, _) = compare!(&xs, |b, x| b.softmax(&x, 4, len, None));
        println!("softmax {len} abs {a:e}");
        let (a2, _) = compare!(&xs, |b, x| b.two_quad(&x, 4, len, None));
        println!("2quad {len} abs {a2:e}");
        let (a3, _) = compare!(&xs, |b, x| b.two_relu(&x, 4, len, None));
        println!("2relu {len} abs {a3:e}");
    }
}
