//! Leak check: what one party receives looks the same whatever the other party's secret, and
//! two inferences never share a mask.
//!
//! P1's view (every byte it receives during a private inference through a `Session`, before the
//! output reaches it) is recorded for two different weight sets of P0; P0's view for two
//! different inputs of P1. Each pair of views must pass a two-sample chi-square test on byte
//! values, and each view must look uniform. Across two inferences of one session, the values
//! P0 sees opened (its share plus the share it receives, in every exchange) must differ like
//! independent uniform values: a provider that hands out the same material twice is caught.
//! The runs are seeded, so the verdict is reproducible.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::end_session;
use mpc_core::preprocessing::{MaskId, MaskRelease, Material, Preprocessing, Request};
use mpc_core::transport::{Direction, Recorded, Role};
use mpc_io_std::run::threads::{LaunchOptions, run_threaded_over};
use mpc_io_std::run::to_error;
use mpc_nn::WeightMode;
use mpc_transformer::{BertConfig, Params, Preset, Session, SessionOptions, Unobserved};

fn config() -> BertConfig {
    BertConfig { num_labels: Some(2), ..BertConfig::tiny(1, 32, 4, 50) }
}

/// Every byte `observer` receives during one private inference through a session, up to the
/// output (the reveal to P1 is cut off: it is the answer, not the protocol).
fn view(observer: Role, params: &Params, tokens: &[u32], weights: WeightMode, seed: u64) -> Vec<u8> {
    let config = config();
    let preset = Preset::parse("quad+2quad").unwrap();
    let run = run_threaded_over(LaunchOptions::seeded(seed), Recorded::new, |ctx| {
        let role = ctx.role;
        let options = SessionOptions::default().weights(weights);
        let mut session =
            Session::connect(role, &mut ctx.peer, &mut ctx.dealer, &mut ctx.rng, options).map_err(to_error)?;
        session.load(&config, preset, (role == Role::P0).then_some(params), None).map_err(to_error)?;
        let before = session.backend().party().transport().inner().inner().transcript().len();
        session.infer((role == Role::P1).then_some(tokens), &mut Unobserved).map_err(to_error)?;
        let after = session.backend().party().transport().inner().inner().transcript().len();
        end_session(session).map_err(to_error)?;
        let output = if role == Role::P1 { 8 * config.num_labels.unwrap_or(0) } else { 0 };
        Ok(ctx.peer.inner().transcript()[before..after - output].to_vec())
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
    let config = config();
    let tokens: Vec<u32> = (0..10).map(|i| (i * 7 % 50) as u32).collect();
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
    let config = config();
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
    let config = config();
    let tokens: Vec<u32> = vec![1; 8];
    let clean = view(Role::P1, &Params::random_with_std(&config, 1, 0.1), &tokens, WeightMode::Owner, 51);
    let mut leaky = clean.clone();
    leaky.extend(std::iter::repeat_n(0u8, clean.len() / 50));
    assert!(two_sample(&clean, &leaky) > CRITICAL);
    assert!(against_uniform(&leaky) > CRITICAL);
}

/// What a provider does with material, switched by the test between inferences.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tape {
    /// Pass the dealer's material through.
    Off,
    /// Pass it through and keep a copy.
    Record,
    /// Hand out the kept copies again, in order: every mask of the first inference reused.
    Replay,
}

/// A broken provider (test only): it can replay an earlier inference's material.
struct Replaying<P> {
    inner: P,
    mode: Rc<Cell<Tape>>,
    tape: Vec<Material<u64>>,
    next: usize,
}

impl<P: Preprocessing<u64>> Preprocessing<u64> for Replaying<P> {
    fn material(&mut self, request: &Request) -> Result<Material<u64>, mpc_core::Error> {
        match self.mode.get() {
            Tape::Off => self.inner.material(request),
            Tape::Record => {
                let m = self.inner.material(request)?;
                self.tape.push(m.clone());
                Ok(m)
            }
            Tape::Replay => {
                let m = self.tape.get(self.next).cloned().ok_or(mpc_core::Error::MaterialExhausted)?;
                self.next += 1;
                Ok(m)
            }
        }
    }
}

impl<P: MaskRelease> MaskRelease for Replaying<P> {
    fn next_mask_id(&self) -> MaskId {
        self.inner.next_mask_id()
    }
    fn release_masks(&mut self, masks: core::ops::Range<MaskId>) -> Result<(), mpc_core::Error> {
        self.inner.release_masks(masks)
    }
}

/// The values P0 saw opened (its share plus the peer's, word by word, in every exchange of equal
/// lengths) between two positions of its message log.
fn opened(record: &Recorded<impl Sized>, from: usize, to: usize) -> Vec<u8> {
    let (mut sent_at, mut received_at, mut out) = (0, 0, Vec::new());
    let log = record.log();
    let mut i = 0;
    while i < to {
        let (direction, len) = log[i];
        let pair = log.get(i + 1).copied();
        if let (Direction::Sent, Some((Direction::Received, other))) = (direction, pair)
            && other == len
        {
            if i >= from && len % 8 == 0 {
                let mine = record.sent()[sent_at..sent_at + len].chunks_exact(8);
                let theirs = record.transcript()[received_at..received_at + len].chunks_exact(8);
                for (a, b) in mine.zip(theirs) {
                    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
                    out.extend_from_slice(&word(a).wrapping_add(word(b)).to_le_bytes());
                }
            }
            sent_at += len;
            received_at += len;
            i += 2;
            continue;
        }
        match direction {
            Direction::Sent => sent_at += len,
            Direction::Received => received_at += len,
        }
        i += 1;
    }
    out
}

/// Two inferences of the same text over one session: the values P0 saw opened in each, and
/// P1's two outputs. With `reuse`, both parties' providers replay the first inference's
/// material in the second.
fn two_inferences(reuse: bool) -> (Vec<u8>, Vec<u8>, Vec<Vec<f64>>) {
    let config = config();
    let params = Params::random_with_std(&config, 5, 0.1);
    let tokens: Vec<u32> = (0..8).map(|i| (i * 11 % 50) as u32).collect();
    let preset = Preset::parse("quad+2quad").unwrap();
    let run = run_threaded_over(LaunchOptions::seeded(61), Recorded::new, |ctx| {
        let role = ctx.role;
        let mode = Rc::new(Cell::new(Tape::Off));
        let provider = Replaying { inner: &mut ctx.dealer, mode: mode.clone(), tape: Vec::new(), next: 0 };
        let mut session = Session::connect(role, &mut ctx.peer, provider, &mut ctx.rng, SessionOptions::default())
            .map_err(to_error)?;
        session.load(&config, preset, (role == Role::P0).then_some(&params), None).map_err(to_error)?;
        let mut marks = Vec::new();
        let mut outputs = Vec::new();
        for tape in [Tape::Record, if reuse { Tape::Replay } else { Tape::Off }] {
            mode.set(tape);
            marks.push(session.backend().party().transport().inner().inner().log().len());
            let out = session.infer((role == Role::P1).then_some(&tokens[..]), &mut Unobserved).map_err(to_error)?;
            outputs.extend(out.output);
        }
        marks.push(session.backend().party().transport().inner().inner().log().len());
        mode.set(Tape::Off);
        end_session(session).map_err(to_error)?;
        let record = ctx.peer.inner();
        Ok((opened(record, marks[0], marks[1]), opened(record, marks[1], marks[2]), outputs))
    })
    .expect("run");
    let (first, second, _) = run.p0.output;
    (first, second, run.p1.output.2)
}

#[test]
fn two_inferences_never_share_a_mask_and_reuse_is_caught() {
    for reuse in [false, true] {
        let (first, second, outputs) = two_inferences(reuse);
        assert_eq!(first.len(), second.len(), "the same plan opens the same lengths");
        assert!(first.len() > 50_000, "{} opened bytes are too few to test", first.len());
        // Opened values are x - A: with fresh masks the two inferences' are independent and
        // uniform; with a reused mask they are equal (the same text) where the masks repeat.
        let difference: Vec<u8> = first.iter().zip(&second).map(|(a, b)| a ^ b).collect();
        let stat = against_uniform(&difference);
        println!("reuse {reuse}: {} opened bytes, chi2 of their difference {stat:.0}", first.len());
        if reuse {
            assert!(stat > CRITICAL, "a provider that reuses masks went unnoticed (chi2 {stat:.0})");
            // And the inference still "works": reuse is silent to the parties, hence this test.
            assert_eq!(outputs.len(), 2);
            assert!(mpc_io_std::max_abs_diff(&outputs[0], &outputs[1]) < 1e-2);
        } else {
            assert!(stat < CRITICAL, "fresh material, yet the openings repeat (chi2 {stat:.0})");
        }
    }
}
