//! The numerical functions in the simulated fixed-point setting against f64, each held to the
//! bound its doc comment states (`--nocapture` prints the errors). A NaN anywhere fails.

use mpc_core::transport::Role;
use mpc_nn::{Backend, Fixed, Plain};

fn grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect()
}

/// The largest error; a NaN is infinite (`f64::max` would drop it).
fn worst(errors: impl Iterator<Item = f64>) -> f64 {
    errors.fold(0.0, |m, e| if e.is_nan() { f64::INFINITY } else { m.max(e) })
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
        assert_eq!(got.len(), expect.len());
        let abs = worst(got.iter().zip(&expect).map(|(g, e)| (g - e).abs()));
        let rel = worst(got.iter().zip(&expect).map(|(g, e)| ((g - e) / e).abs()));
        (abs, rel)
    }};
}

#[test]
fn simulated_functions_meet_their_bounds() {
    let check = |name: &str, err: f64, bound: f64| {
        println!("{name}: {err:.3e} (bound {bound:e})");
        assert!(err <= bound, "{name}: error {err:e} above {bound:e}");
    };
    let (_, r) = compare!(&grid(1.0 / 64.0, 64.0, 4001), |b, x| b.reciprocal(&x));
    check("reciprocal (relative)", r, 1e-3);
    let (_, r) = compare!(&grid(1e-2, 1e3, 4001), |b, x| b.inv_sqrt(&x));
    check("inv_sqrt (relative)", r, 1e-3);
    let (a, _) = compare!(&grid(-64.0, 0.0, 4001), |b, x| b.exp(&x));
    check("exp", a, 8e-5);
    let (a, _) = compare!(&grid(-1000.0, 1000.0, 8001), |b, x| b.gelu(&x));
    check("gelu on [-1e3, 1e3]", a, 2e-4);
    let (a, _) = compare!(&grid(-8.0, 8.0, 4001), |b, x| b.gelu(&x));
    check("gelu on [-8, 8]", a, 2e-4);
    let (a, _) = compare!(&grid(-10.0, 10.0, 4001), |b, x| b.quad(&x));
    check("quad", a, 1e-4);
    let (a, _) = compare!(&grid(-10.0, 10.0, 4001), |b, x| b.erf(&x));
    check("erf", a, 1.5e-4);
    let (a, _) = compare!(&grid(-10.0, 10.0, 4001), |b, x| b.tanh(&x));
    check("tanh", a, 2.2e-4);
    let (a, _) = compare!(&grid(-20.0, 20.0, 4001), |b, x| b.sigmoid(&x));
    check("sigmoid", a, 1.1e-4);
    for len in [8usize, 128, 512] {
        let xs: Vec<f64> = (0..4 * len).map(|i| ((i * 7919 % 1000) as f64 / 10.0) - 50.0).collect();
        let (a, _) = compare!(&xs, |b, x| b.softmax(&x, 4, len, None));
        check(&format!("softmax, rows of {len}"), a, 9e-5);
        let (a, _) = compare!(&xs, |b, x| b.two_quad(&x, 4, len, None));
        check(&format!("2quad, rows of {len}"), a, 4.5e-5);
        let (a, _) = compare!(&xs, |b, x| b.two_relu(&x, 4, len, None));
        check(&format!("2relu, rows of {len}"), a, 4.5e-5);
    }
}

#[test]
fn layer_norm_of_wide_rows_far_from_zero_is_unbiased() {
    use mpc_nn::layers::LayerNorm;
    use mpc_nn::tensor::Tensor;
    // BERT-base's width: 1/768 is not a short binary fraction, and these rows' mean (6) would be
    // off by 0.4 % with the constant at 16 bits, which a LayerNorm then divides by σ ≈ 1.2.
    let (rows, h) = (4, 768);
    let xs: Vec<f64> = (0..rows * h).map(|i| 6.0 + ((i * 7919 % 401) as f64 / 100.0) - 2.0).collect();
    let (gamma, beta) = (vec![1.0; h], vec![0.0; h]);
    let (a, _) = compare!(&xs, |b, x| {
        let norm = LayerNorm::load(b, Some((&gamma, &beta)), h, 1e-12).unwrap();
        norm.forward(b, &Tensor::matrix(rows, h, x).unwrap()).map(Tensor::into_data)
    });
    println!("layer norm, rows of 768 around 6: {a:.3e}");
    assert!(a <= 2e-3, "layer norm error {a:e}");
}

#[test]
fn layer_norm_matches_plaintext_across_widths_scales_and_input_precisions() {
    use mpc_nn::layers::LayerNorm;
    use mpc_nn::tensor::Tensor;
    let rows = 3;
    for h in [3usize, 384, 768, 1024] {
        // Variances from 4e-4 (rows of three are left out there: one of them has 7e-5, below the
        // inverse square root's range) to about 1000.
        for (std, mean) in [(0.02, 1.0), (0.035, 0.0), (1.0, -3.0), (8.0, 40.0), (25.0, -10.0)] {
            if h == 3 && std < 0.03 {
                continue;
            }
            // Deterministic, spread values: a row's entries are mean + std·(uniform on ±√3).
            let xs: Vec<f64> =
                (0..rows * h).map(|i| mean + std * 3f64.sqrt() * (((i * 7919 % 1009) as f64 / 504.0) - 1.0)).collect();
            let gamma: Vec<f64> = (0..h).map(|i| 0.5 + (i % 7) as f64 / 4.0).collect();
            let beta: Vec<f64> = (0..h).map(|i| (i % 5) as f64 / 10.0 - 0.2).collect();
            for wide in [false, true] {
                let (a, _) = compare!(&xs, |b, x| {
                    let norm = LayerNorm::load(b, Some((&gamma, &beta)), h, 1e-12).unwrap();
                    if wide {
                        // The same values at 2f bits, as a residual sum of an untruncated product.
                        let x = b.extend(&x, b.frac_bits(), 0);
                        norm.forward_wide(b, &Tensor::matrix(rows, h, x).unwrap()).map(Tensor::into_data)
                    } else {
                        norm.forward(b, &Tensor::matrix(rows, h, x).unwrap()).map(Tensor::into_data)
                    }
                });
                // x itself carries f = 16 fractional bits: γ·2^-16/σ is the floor (γ up to 2).
                let bound = 1e-3f64.max(4e-5 / std);
                println!("layer norm h = {h}, std {std}, mean {mean}, wide {wide}: {a:.3e} (bound {bound:.1e})");
                assert!(a <= bound, "h = {h}, std {std}, wide {wide}: error {a:e}");
            }
        }
    }
}
