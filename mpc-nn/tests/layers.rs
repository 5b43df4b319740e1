//! The layers in plaintext and in simulation: known values, shape checks.

use mpc_core::transport::Role;
use mpc_nn::layers::{Activation, Embedding, LayerNorm, Linear, Normaliser};
use mpc_nn::{Backend, Fixed, Plain, Tensor};

#[test]
fn layer_norm_is_the_real_one() {
    let mut b = Plain::<f64>::new();
    let norm = LayerNorm::load(&mut b, Some((&[1.0, 2.0, 1.0, 1.0], &[0.0, 0.0, 0.5, 0.0])), 4, 1e-12).unwrap();
    let x = Tensor::matrix(2, 4, vec![1.0, 2.0, 3.0, 4.0, -2.0, 0.0, 2.0, 4.0]).unwrap();
    let y = norm.forward(&mut b, &x).unwrap();
    // Row 1: mean 2.5, variance 1.25.
    let s = 1.25f64.sqrt();
    let expect = [-1.5 / s, 2.0 * -0.5 / s, 0.5 / s + 0.5, 1.5 / s];
    for (g, e) in y.data()[..4].iter().zip(expect) {
        assert!((g - e).abs() < 1e-9, "{g} vs {e}");
    }
    // The simulation agrees to fixed-point precision.
    let mut f = Fixed::default();
    let norm = LayerNorm::load(&mut f, Some((&[1.0, 2.0, 1.0, 1.0], &[0.0, 0.0, 0.5, 0.0])), 4, 1e-12).unwrap();
    let xf = f.input(Role::P0, Some(x.data()), 8).unwrap();
    let yf = norm.forward(&mut f, &Tensor::matrix(2, 4, xf).unwrap()).unwrap();
    for (g, e) in f.reveal(yf.data()).unwrap().iter().zip(y.data()) {
        assert!((g - e).abs() < 1e-3, "{g} vs {e}");
    }
}

#[test]
fn linear_embedding_and_activations() {
    let mut b = Plain::<f64>::new();
    let lin = Linear::load(&mut b, Some((vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.5, -0.5])), 3, 2).unwrap();
    let x = Tensor::matrix(1, 3, vec![1.0, 1.0, 1.0]).unwrap();
    assert_eq!(lin.forward(&mut b, &x).unwrap().data(), &vec![9.5, 11.5]);
    assert!(lin.forward(&mut b, &Tensor::matrix(1, 2, vec![1.0, 1.0]).unwrap()).is_err(), "width checked");

    let table = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0];
    let emb = Embedding::load(&mut b, Some(table.to_vec()), 3, 2).unwrap();
    assert_eq!(emb.forward(&mut b, Some(&[2, 0]), 2).unwrap().data(), &vec![20.0, 21.0, 0.0, 1.0]);
    assert!(emb.forward(&mut b, Some(&[3]), 1).is_err(), "index outside the table");

    let q = Activation::Quad.apply(&mut b, &Tensor::matrix(1, 3, vec![-2.0, 0.0, 2.0]).unwrap()).unwrap();
    assert_eq!(q.data(), &vec![0.5, 0.5, 1.5]);
    let p = Normaliser::TwoQuad.apply(&mut b, &[1.0, 2.0, 3.0, -1.0], 4, None).unwrap();
    let expect = [0.218182, 0.296970, 0.387879, 0.096970];
    assert!(p.iter().zip(expect).all(|(g, e)| (g - e).abs() < 1e-6), "MPCFormer's 2Quad test vector");
}

#[test]
fn tensors_check_their_shapes() {
    assert!(Tensor::matrix(2, 3, vec![0.0; 5]).is_err());
    let t = Tensor::new(&[2, 3, 4], vec![0u64; 24]).unwrap();
    assert_eq!((t.rows(), t.cols(), t.shape()), (2, 12, &[2usize, 3, 4][..]));
}

#[test]
fn layer_norm_is_right_on_rows_of_small_variance() {
    // An embedding sum of three N(0, 0.02²) tables has a variance near 1.2e-3: the variance
    // term V = Σ(x - mean)²/2^p is then about 2^-9, below where 1/√ once started (2^-7).
    let (rows, h) = (4, 768);
    let mut s = 11u64;
    let x: Vec<f64> = (0..rows * h)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            (u - 0.5) * 0.12 * (1.0 + (i / h) as f64 * 0.5)
        })
        .collect();
    let (g, beta) = (vec![1.0; h], vec![0.0; h]);
    let mut p = Plain::<f64>::new();
    let norm = LayerNorm::load(&mut p, Some((&g, &beta)), h, 1e-12).unwrap();
    let y = norm.forward(&mut p, &Tensor::matrix(rows, h, x.clone()).unwrap()).unwrap();
    let mut f = Fixed::default();
    let norm = LayerNorm::load(&mut f, Some((&g, &beta)), h, 1e-12).unwrap();
    let xf = f.input(Role::P0, Some(&x), rows * h).unwrap();
    let yf = norm.forward(&mut f, &Tensor::matrix(rows, h, xf).unwrap()).unwrap();
    for (got, want) in f.reveal(yf.data()).unwrap().iter().zip(y.data()) {
        assert!((got - want).abs() < 2e-3, "{got} vs {want}");
    }
}
