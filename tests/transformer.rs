//! One Transformer, every setting: the encoder under the real protocol over threads matches the
//! plaintext f64 encoder with the same approximations, for every preset and both weight modes.

use mpc_core::protocol::Truncation;
use mpc_core::transport::Role;
use mpc_io_std::max_abs_diff as max_diff;
use mpc_io_std::run::threads::{LaunchOptions, run_threaded};
use mpc_nn::{Backend, Plain, Secure, WeightMode};
use mpc_transformer::{BertConfig, Encoder, Params, Preset, Unobserved};

const SEQ: usize = 16;

fn tokens(vocab: usize) -> Vec<u32> {
    tokens_of(vocab, SEQ)
}

fn tokens_of(vocab: usize, seq: usize) -> Vec<u32> {
    (0..seq).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
}

fn mask() -> Vec<f64> {
    mask_of(SEQ)
}

fn mask_of(seq: usize) -> Vec<f64> {
    // The last three tokens are padding.
    (0..seq).map(|i| if i < seq - 3 { 1.0 } else { 0.0 }).collect()
}

fn plain(config: &BertConfig, params: &Params, preset: Preset) -> Vec<f64> {
    let mut b = Plain::<f64>::new();
    let model = Encoder::load(&mut b, config, preset, Some(params), None).expect("load");
    let out = model.forward(&mut b, Some(&tokens(config.vocab_size)), &mask(), &mut Unobserved).expect("forward");
    b.reveal(&out).unwrap()
}

fn secure(config: &BertConfig, params: &Params, preset: Preset, weights: WeightMode) -> Vec<f64> {
    let toks = tokens(config.vocab_size);
    let run = run_threaded(LaunchOptions::seeded(5), |ctx| {
        let role = ctx.role;
        let party = ctx.party()?.with_truncation(Truncation::Dealer);
        let mut b = Secure::new(party).with_weight_mode(weights);
        let model = Encoder::load(&mut b, config, preset, (role == Role::P0).then_some(params), None)
            .map_err(|_| mpc_core::Error::Malformed("load"))?;
        let out = model
            .forward(&mut b, (role == Role::P1).then_some(&toks[..]), &mask(), &mut Unobserved)
            .map_err(|_| mpc_core::Error::Malformed("forward"))?;
        b.reveal(&out)
    })
    .expect("threaded run");
    assert_eq!(run.p0.output, run.p1.output);
    run.p0.output
}

#[test]
fn every_preset_and_weight_mode_matches_plaintext() {
    for labels in [None, Some(3)] {
        let config = BertConfig { num_labels: labels, ..BertConfig::tiny(2, 64, 4, 100) };
        let params = Params::random_with_std(&config, 11, 0.1);
        for preset in Preset::ALL {
            let reference = plain(&config, &params, preset);
            let scale = reference.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(scale > 0.1, "{preset}: outputs of size {scale} would make the test weak");
            for weights in [WeightMode::Owner, WeightMode::Shared] {
                let got = secure(&config, &params, preset, weights);
                let err = max_diff(&got, &reference);
                println!(
                    "{preset} {weights:?} head {labels:?}: max |secure - plain| = {err:.2e} (outputs up to {scale:.2})"
                );
                assert!(err <= 1e-2, "{preset} {weights:?}: error {err}");
            }
        }
    }
}

#[test]
fn presets_change_the_model() {
    // The approximations are not the identity: Quad+2Quad differs from GeLU+softmax.
    let config = BertConfig { num_labels: None, ..BertConfig::tiny(2, 64, 4, 100) };
    let params = Params::random_with_std(&config, 12, 0.1);
    let exact = plain(&config, &params, Preset::parse("gelu+softmax").unwrap());
    let approx = plain(&config, &params, Preset::parse("quad+2quad").unwrap());
    assert!(max_diff(&exact, &approx) > 0.05);
}

#[test]
fn the_simulation_predicts_the_protocols_traffic_exactly() {
    use mpc_core::transport::CommStats;
    use mpc_nn::Fixed;

    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(2, 64, 4, 100) };
    let params = Params::random_with_std(&config, 13, 0.1);
    // 16 tokens look the embedding up by one-hot rows, 40 by bins.
    let lengths = [SEQ, 40];
    for (preset, seq) in Preset::ALL.into_iter().flat_map(|p| lengths.map(|seq| (p, seq))) {
        let (toks, mask) = (tokens_of(config.vocab_size, seq), mask_of(seq));
        for weights in [WeightMode::Owner, WeightMode::Shared] {
            for truncation in [Truncation::Local, Truncation::Dealer] {
                let run = run_threaded(LaunchOptions::seeded(6), |ctx| {
                    let role = ctx.role;
                    let party = ctx.party()?.with_truncation(truncation);
                    let mut b = Secure::new(party).with_weight_mode(weights);
                    let model = Encoder::load(&mut b, &config, preset, (role == Role::P0).then_some(&params), None)
                        .map_err(|_| mpc_core::Error::Malformed("load"))?;
                    b.reveal(&[0])?; // a barrier
                    let before = b.party().transport().stats();
                    model
                        .forward(&mut b, (role == Role::P1).then_some(&toks[..]), &mask, &mut Unobserved)
                        .map_err(|_| mpc_core::Error::Malformed("forward"))?;
                    Ok(b.party().transport().stats().since(&before))
                })
                .expect("run");
                let mut fixed = Fixed::default().with_truncation(truncation).with_weight_mode(weights);
                let model = Encoder::load(&mut fixed, &config, preset, Some(&params), None).expect("load");
                fixed.reset_ledger();
                model.forward(&mut fixed, Some(&toks), &mask, &mut Unobserved).expect("forward");
                let predicted: [CommStats; 2] = [fixed.ledger().stats(Role::P0), fixed.ledger().stats(Role::P1)];
                assert_eq!(predicted, [run.p0.output, run.p1.output], "{preset} {weights:?} {truncation:?} {seq}");
            }
        }
    }
}
