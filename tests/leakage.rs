//! Leak check: what one party receives looks the same whatever the other party's secret.
//!
//! P1's view (every byte it receives during a private inference, before the output is
//! revealed) is recorded for two different weight sets of P0; P0's view for two different
//! inputs of P1. Each pair of views must pass a two-sample chi-square test on byte values, and
//! each view must look uniform. The runs are seeded, so the verdict is reproducible.

use mpc_core::protocol::Truncation;
use mpc_core::transport::{Recorded, Role};
use mpc_io_std::launcher::{LaunchOptions, run_threaded_over};
use mpc_nn::{Secure, WeightMode};
use mpc_transformer::{BertConfig, Encoder, Params, Preset, Unobserved};

/// Every byte `observer` receives during one private inference (no output revealed).
fn view(observer: Role, params: &Params, tokens: &[u32], weights: WeightMode, seed: u64) -> Vec<u8> {
    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(1, 32, 4, 50) };
    let mask = vec![1.0; tokens.len()];
    let preset = Preset::parse("quad+2quad").unwrap();
    let run = run_threaded_over(LaunchOptions::seeded(seed), Recorded::new, |ctx| {
        let role = ctx.role;
        let party = ctx.party()?.with_truncation(Truncation::Dealer);
        let mut b = Secure::new(party).with_weight_mode(weights);
        let model = Encoder::load(&mut b, &config, preset, (role == Role::P0).then_some(params), None)
            .map_err(|_| mpc_core::Error::Malformed("load"))?;
        model
            .forward(&mut b, (role == Role::P1).then_some(tokens), &mask, &mut Unobserved)
            .map_err(|_| mpc_core::Error::Malformed("forward"))?;
        Ok(b.into_party().into_parts().0.inner().transcript().to_vec())
    })
    .expect("run");
    match observer {
        Role::P0 => run.p0.output,
        Role::P1 => run.p1.output,
    }
}

fn histogram(bytes: &[u8]) -> [f64; 256] {
    let mut h = [0.0; 256];
    bytes.iter().for_each(|&b| h[b as usize] += 1.0);
    h
}

/// Two-sample chi-square statistic over byte values (255 degrees of freedom).
fn two_sample(a: &[u8], b: &[u8]) -> f64 {
    let (ha, hb) = (histogram(a), histogram(b));
    let (na, nb) = (a.len() as f64, b.len() as f64);
    (0..256)
        .filter(|&i| ha[i] + hb[i] > 0.0)
        .map(|i| {
            let (x, y) = (ha[i] * (nb / na).sqrt(), hb[i] * (na / nb).sqrt());
            (x - y) * (x - y) / (ha[i] + hb[i])
        })
        .sum()
}

/// One-sample chi-square statistic against uniform bytes.
fn against_uniform(a: &[u8]) -> f64 {
    let e = a.len() as f64 / 256.0;
    histogram(a).iter().map(|&o| (o - e) * (o - e) / e).sum()
}

/// The chi-square(255) quantile at 1 - 1e-6: anything above is a leak, not chance.
const CRITICAL: f64 = 380.0;

#[test]
fn p1_sees_the_same_for_different_weights() {
    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(1, 32, 4, 50) };
    let tokens: Vec<u32> = (0..8).map(|i| (i * 7 % 50) as u32).collect();
    for weights in [WeightMode::Owner, WeightMode::Shared] {
        let a = view(Role::P1, &Params::random_with_std(&config, 1, 0.1), &tokens, weights, 31);
        // Weights of another scale entirely, from another seed.
        let b = view(Role::P1, &Params::random_with_std(&config, 2, 0.5), &tokens, weights, 32);
        assert_eq!(a.len(), b.len(), "the view's shape is public");
        assert!(a.len() > 100_000, "a view of {} bytes is too small to test", a.len());
        let stat = two_sample(&a, &b);
        assert!(stat < CRITICAL, "{weights:?}: P1's views differ (chi2 {stat:.0})");
        assert!(against_uniform(&a) < CRITICAL && against_uniform(&b) < CRITICAL, "{weights:?}: not uniform");
    }
}

#[test]
fn p0_sees_the_same_for_different_texts() {
    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(1, 32, 4, 50) };
    let params = Params::random_with_std(&config, 3, 0.1);
    let first: Vec<u32> = vec![2; 8];
    let second: Vec<u32> = (0..8).map(|i| (i * 13 % 50) as u32).collect();
    for weights in [WeightMode::Owner, WeightMode::Shared] {
        let a = view(Role::P0, &params, &first, weights, 41);
        let b = view(Role::P0, &params, &second, weights, 42);
        assert_eq!(a.len(), b.len());
        let stat = two_sample(&a, &b);
        assert!(stat < CRITICAL, "{weights:?}: P0's views differ (chi2 {stat:.0})");
        assert!(against_uniform(&a) < CRITICAL && against_uniform(&b) < CRITICAL, "{weights:?}: not uniform");
    }
}

#[test]
fn the_test_has_power() {
    // A view with a leak (the secret bytes appended in the clear) fails the same test.
    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(1, 32, 4, 50) };
    let tokens: Vec<u32> = vec![1; 8];
    let clean = view(Role::P1, &Params::random_with_std(&config, 1, 0.1), &tokens, WeightMode::Owner, 51);
    let mut leaky = clean.clone();
    leaky.extend(std::iter::repeat_n(0u8, clean.len() / 50));
    assert!(two_sample(&clean, &leaky) > CRITICAL);
    assert!(against_uniform(&leaky) > CRITICAL);
}
