//! The `Session` procedure: the same outputs as plaintext in every preset and weight mode, the
//! output revealed to the data owner only, a handshake that names every mismatched parameter,
//! bounded queries, streamed material, and many queries over one session.

mod common;

use common::end_session;
use mpc_core::transport::Role;
use mpc_io_std::max_abs_diff as max_diff;
use mpc_io_std::run::threads::{LaunchOptions, run_threaded};
use mpc_io_std::run::{PrivateJob, run_private};
use mpc_nn::{Backend, Plain, WeightMode};
use mpc_transformer::{BertConfig, Encoder, Params, Preset, Reveal, Session, SessionError, SessionOptions, Unobserved};

fn model(labels: Option<usize>) -> (BertConfig, Params, Vec<u32>) {
    let config = BertConfig { num_labels: labels, ..BertConfig::tiny(2, 64, 4, 100) };
    let params = Params::random_with_std(&config, 21, 0.1);
    let tokens = (0..12u32).map(|i| (i * 37 + 11) % 100).collect();
    (config, params, tokens)
}

fn plain(config: &BertConfig, params: &Params, preset: Preset, tokens: &[u32]) -> Vec<f64> {
    let mut b = Plain::<f64>::new();
    let model = Encoder::load(&mut b, config, preset, Some(params), None).unwrap();
    let out = model.forward(&mut b, Some(tokens), &vec![1.0; tokens.len()], &mut Unobserved).unwrap();
    b.reveal(&out).unwrap()
}

#[test]
fn every_preset_and_weight_mode_matches_plaintext_and_only_p1_learns_the_output() {
    for labels in [None, Some(3)] {
        let (config, params, tokens) = model(labels);
        for preset in Preset::ALL {
            let reference = plain(&config, &params, preset, &tokens);
            for weights in [WeightMode::Owner, WeightMode::Shared] {
                let job = PrivateJob { weights, seed: Some(3), ..PrivateJob::new(&config, &params, &tokens, preset) };
                let run = run_private(job).expect("run");
                assert_eq!(run.p0.output.output, None, "{preset} {weights:?}: P0 learns nothing");
                let got = run.p1.output.output.expect("P1 learns the output");
                let err = max_diff(&got, &reference);
                println!("{preset} {weights:?} {labels:?}: max |session - plain| = {err:.2e}");
                assert!(err <= 1e-2, "{preset} {weights:?} {labels:?}: error {err}");
            }
        }
    }
}

#[test]
fn with_the_default_reveal_p0_receives_nothing_in_the_reveal() {
    // The only difference between the two reveals is P1's shares reaching P0: exactly the
    // output's elements with `Both`, nothing with the default.
    let (config, params, tokens) = model(Some(2));
    let preset = Preset::parse("quad+2quad").unwrap();
    let received = |reveal| {
        let job = PrivateJob { reveal, seed: Some(4), ..PrivateJob::new(&config, &params, &tokens, preset) };
        let run = run_private(job).expect("run");
        (run.p0.output.online.1.bytes_received, run.p0.output.output.clone(), run.p1.output.output.clone())
    };
    let (to_p1, p0_sees, p1_sees) = received(Reveal::DataOwner);
    let (to_both, p0_sees_both, _) = received(Reveal::Both);
    assert_eq!(p0_sees, None);
    assert_eq!(to_both - to_p1, 2 * 8, "two logits of 8 bytes: all P0 ever gets of the output");
    assert_eq!(p0_sees_both.map(|v| v.len()), p1_sees.map(|v| v.len()));
}

/// A party's session options and model choice (configuration, preset, depth).
type Choice = (SessionOptions, BertConfig, Preset, Option<usize>);

/// Runs `p0` and `p1`, each with its own choice, and returns each party's result of connect +
/// load + one inference.
fn pair_run(p0: Choice, p1: Choice, tokens: &[u32]) -> [Result<Option<Vec<f64>>, SessionError>; 2] {
    let params = Params::random_with_std(&p0.1, 5, 0.1);
    let run = run_threaded(LaunchOptions::seeded(6), |ctx| {
        let (options, config, preset, layers) = if ctx.role == Role::P0 { &p0 } else { &p1 };
        let result = (|| {
            let mut session = Session::connect(ctx.role, &mut ctx.peer, &mut ctx.dealer, &mut ctx.rng, *options)?;
            let mine = (ctx.role == Role::P0).then_some(&params);
            session.load(config, *preset, mine, *layers)?;
            let out = session.infer((ctx.role == Role::P1).then_some(tokens), &mut Unobserved)?;
            end_session(session)?;
            Ok(out.output)
        })();
        Ok(result)
    });
    match run {
        Ok(run) => [run.p0.output, run.p1.output],
        // A failed handshake leaves the dealer waiting: its session ends when P0's link drops.
        Err(e) => panic!("the launcher failed: {e}"),
    }
}

#[test]
fn the_handshake_refuses_each_mismatched_parameter_by_name() {
    let (config, _, tokens) = model(Some(2));
    let preset = Preset::parse("quad+2quad").unwrap();
    let base = SessionOptions::default();
    let same = (base, config.clone(), preset, None);
    // Session parameters.
    let session_cases: [(SessionOptions, &str); 7] = [
        (base.weights(WeightMode::Shared), "weight mode"),
        (base.truncation(mpc_core::protocol::Truncation::Local), "truncation"),
        (base.max_tokens(64), "max tokens"),
        (base.reveal(Reveal::Both), "reveal"),
        (base.material(base.material_budget / 2, base.material_chunk), "material budget"),
        (base.material(base.material_budget, base.material_chunk / 2), "material chunk"),
        (base.pool(1), "queries made ahead"),
    ];
    for (options, field) in session_cases {
        for results in [
            pair_run((options, config.clone(), preset, None), same.clone(), &tokens),
            pair_run(same.clone(), (options, config.clone(), preset, None), &tokens),
        ] {
            for r in results {
                match r {
                    Err(SessionError::Mismatch { field: named, .. }) => assert_eq!(named, field),
                    other => panic!("{field}: expected a mismatch, got {other:?}"),
                }
            }
        }
    }
    // Model parameters.
    let model_cases: [(Choice, &str); 4] = [
        ((base, config.clone(), Preset::parse("quad+2relu").unwrap(), None), "preset attention"),
        ((base, config.clone(), Preset::parse("gelu+2quad").unwrap(), None), "preset activation"),
        ((base, config.clone(), preset, Some(1)), "layers"),
        ((base, BertConfig { num_labels: Some(3), ..config.clone() }, preset, None), "labels"),
    ];
    for (other, field) in model_cases {
        let [r0, r1] = pair_run(same.clone(), other, &tokens);
        for r in [r0, r1] {
            match r {
                Err(SessionError::Mismatch { field: named, .. }) => assert_eq!(named, field),
                other => panic!("{field}: expected a mismatch, got {other:?}"),
            }
        }
    }
    // And agreement runs.
    let [r0, r1] = pair_run(same.clone(), same, &tokens);
    assert_eq!(r0, Ok(None));
    assert_eq!(r1.map(|o| o.map(|v| v.len())), Ok(Some(2)));
}

#[test]
fn a_query_longer_than_the_bound_is_refused_at_both_parties() {
    let (config, _, _) = model(Some(2));
    let preset = Preset::parse("quad+2quad").unwrap();
    let options = SessionOptions::default().max_tokens(8);
    let long: Vec<u32> = (0..9).collect();
    let [r0, r1] = pair_run((options, config.clone(), preset, None), (options, config, preset, None), &long);
    assert_eq!(r0, Err(SessionError::TooLong { tokens: 9, max: 8 }));
    assert_eq!(r1, Err(SessionError::TooLong { tokens: 9, max: 8 }));
}

#[test]
fn streamed_material_gives_the_same_answer_and_holds_one_chunk() {
    // A budget of nothing and small chunks: every piece of material is made on demand.
    let (config, params, tokens) = model(Some(2));
    let preset = Preset::parse("gelu+softmax").unwrap();
    let reference = plain(&config, &params, preset, &tokens);
    let mut sent = Vec::new();
    for (budget, chunk) in [(0, 1 << 12), (1 << 30, 1 << 20)] {
        let run = run_threaded(LaunchOptions::seeded(7), |ctx| {
            let options = SessionOptions::default().material(budget, chunk);
            let mut session = Session::connect(ctx.role, &mut ctx.peer, &mut ctx.dealer, &mut ctx.rng, options)
                .map_err(mpc_io_std::run::to_error)?;
            let mine = (ctx.role == Role::P0).then_some(&params);
            session.load(&config, preset, mine, None).map_err(mpc_io_std::run::to_error)?;
            let out = session
                .infer((ctx.role == Role::P1).then_some(&tokens[..]), &mut Unobserved)
                .map_err(mpc_io_std::run::to_error)?;
            end_session(session).map_err(mpc_io_std::run::to_error)?;
            Ok((out, ctx.peer.stats()))
        })
        .expect("run");
        let ((p0, p0_link), (p1, p1_link)) = (run.p0.output, run.p1.output);
        let err = max_diff(p1.output.as_ref().unwrap(), &reference);
        assert!(err <= 1e-2, "budget {budget}: error {err}");
        // Both pipelines refill at the same steps, and the parties meet after each refill.
        assert_eq!(p0.material.chunks_on_demand, p1.material.chunks_on_demand);
        if budget == 0 {
            assert!(p0.material.chunks_on_demand > 10, "streamed: {:?}", p0.material);
            // One chunk, or one request larger than a chunk (the largest comparison), at a time.
            assert!(p0.material.peak_elements < p0.material.elements / 4, "{:?}", p0.material);
        } else {
            assert_eq!(p0.material.chunks_on_demand, 0, "all made ahead: the online phase never waits");
        }
        sent.push((p0.material.chunks_on_demand, p0_link.bytes_sent, p1_link.bytes_sent));
    }
    // The meetings are one byte each way per refill; nothing else of the protocol changes.
    let (meetings, streamed_p0, streamed_p1) = sent[0];
    assert_eq!(streamed_p0 - sent[1].1, meetings);
    assert_eq!(streamed_p1 - sent[1].2, meetings);
}

#[test]
fn fifty_queries_over_one_session_agree_plan_once_and_hold_flat_memory() {
    let (config, params, tokens) = model(Some(2));
    let preset = Preset::parse("quad+2quad").unwrap();
    let reference = plain(&config, &params, preset, &tokens);
    let argmax = |v: &[f64]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
    // A pool of three: each query after the first is served from material made while idle, and
    // each run's masks are released when its query ends.
    let session_of = |queries: usize| {
        run_threaded(LaunchOptions::seeded(8), |ctx| {
            let to_error = mpc_io_std::run::to_error;
            let options = SessionOptions::default().pool(3);
            let mut session =
                Session::connect(ctx.role, &mut ctx.peer, &mut ctx.dealer, &mut ctx.rng, options).map_err(to_error)?;
            session.load(&config, preset, (ctx.role == Role::P0).then_some(&params), None).map_err(to_error)?;
            let mut outputs = Vec::new();
            let mut peaks = Vec::new();
            for _ in 0..queries {
                let out =
                    session.infer((ctx.role == Role::P1).then_some(&tokens[..]), &mut Unobserved).map_err(to_error)?;
                peaks.push(out.material.peak_elements);
                outputs.push((out.output, out.planned));
                session.prepare_next().map_err(to_error)?;
            }
            assert_eq!(session.planned_lengths(), vec![tokens.len()]);
            end_session(session).map_err(to_error)?;
            Ok((outputs, peaks))
        })
        .expect("run")
    };
    let (short, long) = (session_of(5), session_of(50));
    let (outputs, peaks) = long.p1.output;
    assert_eq!(outputs.iter().filter(|(_, planned)| *planned).count(), 1, "one plan for one length");
    for (out, _) in &outputs {
        let out = out.as_ref().unwrap();
        assert!(max_diff(out, &reference) <= 1e-2);
        assert_eq!(argmax(out), argmax(&reference), "the same prediction every time");
    }
    // Flat memory: the dealer holds no more masks at once over fifty queries than over five,
    // and the parties' material held at once stops growing after the pool is full.
    assert!(long.dealer.peak_mask_elements > 0);
    assert_eq!(long.dealer.peak_mask_elements, short.dealer.peak_mask_elements);
    assert_eq!(peaks[49], peaks[4], "material held at once: {peaks:?}");
}

#[test]
fn material_made_while_idle_serves_the_next_queries_of_that_length_and_is_dropped_for_another() {
    let (config, params, _) = model(Some(2));
    let preset = Preset::parse("quad+2quad").unwrap();
    let short: Vec<u32> = (0..9u32).map(|i| (i * 13 + 5) % 100).collect();
    let long: Vec<u32> = (0..15u32).map(|i| (i * 29 + 3) % 100).collect();
    // A pool of two. Lengths: a first query, two of the same length (served from the material
    // made while idle, two queries' worth), one of another length (that material dropped), one
    // of it again, then the first length again.
    let queries = [&short, &short, &short, &long, &long, &short];
    let run = run_threaded(LaunchOptions::seeded(12), |ctx| {
        let to_error = mpc_io_std::run::to_error;
        let options = SessionOptions::default().pool(2).clock(mpc_io_std::clock_nanos);
        let mut session =
            Session::connect(ctx.role, &mut ctx.peer, &mut ctx.dealer, &mut ctx.rng, options).map_err(to_error)?;
        session.load(&config, preset, (ctx.role == Role::P0).then_some(&params), None).map_err(to_error)?;
        let mut seen = Vec::new();
        for q in queries {
            let out = session.infer((ctx.role == Role::P1).then_some(&q[..]), &mut Unobserved).map_err(to_error)?;
            seen.push((out.output, out.ahead_nanos > 0, out.material.chunks));
            session.prepare_next().map_err(to_error)?;
        }
        end_session(session).map_err(to_error)?;
        Ok(seen)
    })
    .expect("run");
    let seen = run.p1.output;
    let ahead: Vec<bool> = seen.iter().map(|s| s.1).collect();
    assert_eq!(ahead, [false, true, true, false, true, false], "material made ahead is used only for its length");
    // A query served from the material made ahead makes no chunk of its own (both fit the budget).
    assert_eq!((seen[1].2, seen[2].2, seen[4].2), (0, 0, 0));
    assert!(seen[0].2 > 0 && seen[3].2 > 0);
    for (q, (out, _, _)) in queries.iter().zip(&seen) {
        let err = max_diff(out.as_ref().unwrap(), &plain(&config, &params, preset, q));
        assert!(err <= 1e-2, "error {err}");
    }
}
