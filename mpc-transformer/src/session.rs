//! [`Session`]: the one procedure of a private inference, for every setting and every caller.
//!
//! ```text
//! connect   dealer seeds, the pairwise input seed, the handshake on the session's parameters
//! load      the handshake on the model's parameters, then P0's weights enter once
//! infer     P1 sends its token count (bounded); plan from shapes (cached per length);
//!           offline: material ahead, up to a budget; online: the forward pass, material made
//!           on demand in bounded chunks past the budget; reveal to P1 (or both); release
//! close     P1 tells P0 the session is over (P0's `infer` returns `SessionError::Ended`);
//!           both release the model's masks at the dealer
//! ```
//!
//! # Example
//!
//! P0 (the model owner) and P1 (the data owner) over in-memory links, with the real
//! [`Dealer`](mpc_nn::core::preprocessing::Dealer) in a third thread:
//!
//! ```
//! use mpc_io_std::{ChannelTransport, os_rng};
//! use mpc_nn::core::preprocessing::{Dealer, DealerClient};
//! use mpc_nn::core::transport::{PartyId, Role};
//! use mpc_transformer::{BertConfig, Params, Preset, Session, SessionError, SessionOptions, Unobserved};
//!
//! let config = BertConfig::tiny(1, 8, 2, 20);
//! let params = Params::random(&config, 1);
//! let preset = Preset::parse("quad+2quad").unwrap();
//! let (p0, p1) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
//! let (p0_dealer, dealer_p0) = ChannelTransport::pair(PartyId::P0, PartyId::Dealer);
//! let (p1_dealer, dealer_p1) = ChannelTransport::pair(PartyId::P1, PartyId::Dealer);
//! std::thread::scope(|s| {
//!     s.spawn(|| Dealer::<u64>::new(&mut os_rng().unwrap()).serve(&mut dealer_p0.join(dealer_p1)));
//!     let owner = s.spawn(|| {
//!         let dealer = DealerClient::connect(Role::P0, p0_dealer).unwrap();
//!         let options = SessionOptions::default();
//!         let mut session = Session::connect(Role::P0, p0, dealer, &mut os_rng().unwrap(), options).unwrap();
//!         session.load(&config, preset, Some(&params), None).unwrap();
//!         // P0 answers P1's queries until P1 ends the session.
//!         let mut learned = Vec::new();
//!         loop {
//!             match session.infer(None, &mut Unobserved) {
//!                 Ok(answer) => learned.push(answer.output),
//!                 Err(SessionError::Ended) => break,
//!                 Err(e) => panic!("{e}"),
//!             }
//!         }
//!         let (_, dealer) = session.close().unwrap();
//!         dealer.finish().unwrap();
//!         learned
//!     });
//!     let dealer = DealerClient::connect(Role::P1, p1_dealer).unwrap();
//!     let options = SessionOptions::default();
//!     let mut session = Session::connect(Role::P1, p1, dealer, &mut os_rng().unwrap(), options).unwrap();
//!     session.load(&config, preset, None, None).unwrap();
//!     for text in [&[2, 7, 11][..], &[2, 5, 3]] {
//!         let answer = session.infer(Some(text), &mut Unobserved).unwrap();
//!         assert_eq!(answer.output.unwrap().len(), 8, "P1 gets the sentence embedding");
//!     }
//!     session.close().unwrap();
//!     assert_eq!(owner.join().unwrap(), vec![None, None], "P0 learns nothing of it");
//! });
//! ```

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use mpc_nn::core::preprocessing::{Clock, MaskId, MaskRelease, Pipeline, PipelineStats, Plan, Preprocessing};
use mpc_nn::core::protocol::Truncation;
use mpc_nn::core::transport::{ErrorKind, ErrorType, PartyId, Role, Transport};
use mpc_nn::core::{Error, FixedPoint, Party};
use mpc_nn::{Backend, Secure, WeightMode};
use rand_core::CryptoRng;

use crate::config::BertConfig;
use crate::encoder::{Encoder, ModelError, Observer, Unobserved};
use crate::params::Params;
use crate::preset::Preset;

/// The version of the session protocol, the first field of the handshake.
pub const PROTOCOL_VERSION: u64 = 2;

/// The length P1 sends in place of a query's to end the session.
const END_OF_SESSION: u64 = u64::MAX;

/// A link to the peer that can be switched off: while off, sends go nowhere and receives read
/// zeros. The session rehearses a forward pass on it to learn its plan from shapes alone.
#[derive(Debug)]
pub struct Link<T> {
    inner: T,
    rehearsal: bool,
}

impl<T> Link<T> {
    /// The real transport (for its metering).
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: ErrorType> ErrorType for Link<T> {
    type Error = T::Error;
}

impl<T: Transport> Transport for Link<T> {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), Self::Error> {
        if self.rehearsal { Ok(()) } else { self.inner.send(to, msg) }
    }
    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), Self::Error> {
        if self.rehearsal {
            buf.fill(0);
            Ok(())
        } else {
            self.inner.recv(from, buf)
        }
    }
    fn send_words(&mut self, to: PartyId, words: Vec<u64>) -> Result<(), Self::Error> {
        if self.rehearsal {
            // Wiped as shares are.
            drop(mpc_nn::core::Shares::from_vec(words));
            Ok(())
        } else {
            self.inner.send_words(to, words)
        }
    }
    fn recv_words(&mut self, from: PartyId, len: usize) -> Result<Vec<u64>, Self::Error> {
        if self.rehearsal { Ok(alloc::vec![0; len]) } else { self.inner.recv_words(from, len) }
    }
    fn hands_over_words(&self) -> bool {
        // A rehearsal sends nothing: no buffer is worth handing over.
        !self.rehearsal && self.inner.hands_over_words()
    }
}

/// The backend a session computes with: a [`Secure`] party over the switchable link, its
/// material from the provider (the dealer's client) through a bounded [`Pipeline`].
pub type SessionBackend<T, P> = Secure<Link<T>, Pipeline<P, u64>>;

/// Who learns an inference's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reveal {
    /// The data owner (P1) only: P0 sends its shares, P1 sends nothing.
    #[default]
    DataOwner,
    /// Both parties (an explicit choice: the model owner then learns P1's answer).
    Both,
}

/// A session's public parameters and local limits.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct SessionOptions {
    /// How P0's weights are held (both parties must agree).
    pub weights: WeightMode,
    /// Truncation at the session precision (both must agree; [`Truncation::Dealer`] by default,
    /// which never fails in range).
    pub truncation: Truncation,
    /// Fractional bits of the fixed-point encoding (both must agree).
    pub frac_bits: u32,
    /// The most tokens one query may carry (both must agree).
    pub max_tokens: usize,
    /// Who learns the output (both must agree).
    pub reveal: Reveal,
    /// Ring elements of material held ahead at most (both must agree: the parties refill at
    /// the same step and meet there, so that neither's online time counts the other's refill).
    pub material_budget: usize,
    /// Ring elements per batch of material (both must agree).
    pub material_chunk: usize,
    /// A monotonic clock in nanoseconds, to time the phases (local; `None`: times are 0).
    pub clock: Option<Clock>,
    /// Queries whose material is made while the session is idle ([`Session::prepare_next`];
    /// both must agree; 0: none).
    pub pool: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            weights: WeightMode::Owner,
            truncation: Truncation::default(),
            frac_bits: FixedPoint::default().frac_bits(),
            max_tokens: 512,
            reveal: Reveal::DataOwner,
            material_budget: mpc_nn::core::preprocessing::DEFAULT_BUDGET,
            material_chunk: mpc_nn::core::preprocessing::DEFAULT_CHUNK,
            clock: None,
            pool: 0,
        }
    }
}

impl SessionOptions {
    /// Sets how weights are held.
    pub fn weights(mut self, weights: WeightMode) -> Self {
        self.weights = weights;
        self
    }
    /// Sets the truncation.
    pub fn truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }
    /// Sets who learns the output.
    pub fn reveal(mut self, reveal: Reveal) -> Self {
        self.reveal = reveal;
        self
    }
    /// Sets the most tokens per query.
    pub fn max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }
    /// Sets the material held ahead and the batch size, in ring elements.
    pub fn material(mut self, budget: usize, chunk: usize) -> Self {
        self.material_budget = budget;
        self.material_chunk = chunk;
        self
    }
    /// Sets the clock that times the phases.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Makes the material of the next `pool` queries while the session is idle
    /// ([`Session::prepare_next`]).
    pub fn pool(mut self, pool: usize) -> Self {
        self.pool = pool;
        self
    }
}

/// Why a session failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SessionError {
    /// A protocol step failed (the peer, the dealer, the material).
    Protocol(Error),
    /// The model could not be loaded or run.
    Model(ModelError),
    /// The parties disagree on a public parameter: the handshake names it.
    Mismatch {
        /// The parameter.
        field: &'static str,
        /// This party's value.
        ours: u64,
        /// The peer's value.
        theirs: u64,
    },
    /// The query is longer than the session or the model allows.
    TooLong {
        /// Tokens asked for.
        tokens: usize,
        /// Tokens allowed.
        max: usize,
    },
    /// `infer` before `load`.
    NoModel,
    /// P0's `infer`: the data owner ended the session (no more queries).
    Ended,
    /// The wrong party passed the model's parameters or the tokens.
    WrongRole(&'static str),
}

impl From<Error> for SessionError {
    fn from(e: Error) -> Self {
        SessionError::Protocol(e)
    }
}

impl From<ModelError> for SessionError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Backend(e) => SessionError::Protocol(e),
            other => SessionError::Model(other),
        }
    }
}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SessionError::Protocol(e) => write!(f, "protocol: {e}"),
            SessionError::Model(e) => write!(f, "model: {e}"),
            SessionError::Mismatch { field, ours, theirs } => {
                write!(f, "the parties disagree on {field}: ours is {ours}, the peer's is {theirs}")
            }
            SessionError::TooLong { tokens, max } => write!(f, "{tokens} tokens, the session takes at most {max}"),
            SessionError::NoModel => f.write_str("no model is loaded"),
            SessionError::Ended => f.write_str("the data owner ended the session"),
            SessionError::WrongRole(what) => write!(f, "{what}"),
        }
    }
}

impl core::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SessionError::Protocol(e) => Some(e),
            SessionError::Model(e) => Some(e),
            _ => None,
        }
    }
}

/// The phases of a session, as an observer sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// P0's weights enter the computation (once per model).
    Load,
    /// Material made ahead of an inference.
    Offline,
    /// The inference proper, through the reveal.
    Online,
}

/// Watches a session: each phase's start and end (with the backend, to read its meters), and
/// the forward pass's stages ([`Observer`]).
pub trait SessionObserver<B: Backend>: Observer<B> {
    /// `phase` starts.
    fn phase_start(&mut self, _backend: &B, _phase: Phase) {}
    /// `phase` ends.
    fn phase_end(&mut self, _backend: &B, _phase: Phase) {}
}

impl<B: Backend> SessionObserver<B> for Unobserved {}

/// What one inference gave this party.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Inference {
    /// The output (logits, or the sentence embedding), where revealed to this party.
    pub output: Option<Vec<f64>>,
    /// Tokens of the query.
    pub tokens: usize,
    /// Whether this length's plan was made for this query (the first of its length).
    pub planned: bool,
    /// Nanoseconds of making that plan (a rehearsal of the forward pass on zeros, once per
    /// length and loaded model), by the session's clock; 0 when the plan was cached.
    pub plan_nanos: u64,
    /// Nanoseconds of material made ahead (the offline phase), by the session's clock: 0 when
    /// it was made while the session was idle ([`Inference::ahead_nanos`]).
    pub offline_nanos: u64,
    /// Nanoseconds of material made while the session was idle, before the query came
    /// ([`Session::prepare_next`]); 0 when it was not.
    pub ahead_nanos: u64,
    /// Nanoseconds of the online phase, less the material made on demand within it
    /// (`material.on_demand_nanos`).
    pub online_nanos: u64,
    /// The material pipeline's counters for this inference.
    pub material: PipelineStats,
}

/// The loaded model: its encoder, the plans of the lengths seen, and the masks it holds at the
/// dealer (identities from `first_mask` up).
struct Model<T: Transport, D: Provider> {
    encoder: Encoder<SessionBackend<T, D>>,
    plans: BTreeMap<usize, Arc<Plan>>,
    first_mask: MaskId,
}

/// One party's side of a private-inference session (see the module docs).
pub struct Session<T: Transport, D: Provider> {
    backend: SessionBackend<T, D>,
    options: SessionOptions,
    model: Option<Model<T, D>>,
    /// The last query's length.
    last_tokens: Option<usize>,
    /// The lengths of the runs queued in the pipeline for the next queries, in order.
    prepared: VecDeque<usize>,
}

impl<T: Transport, D: Provider> core::fmt::Debug for Session<T, D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session").field("role", &self.role()).field("loaded", &self.model.is_some()).finish()
    }
}

/// What a session takes its material from: a [`Preprocessing`] provider that can release the
/// masks of a finished model or inference (the dealer's client, or a reference to one).
pub trait Provider: Preprocessing<u64> + MaskRelease {}

impl<P: Preprocessing<u64> + MaskRelease> Provider for P {}

/// Public values both parties must hold alike, each named for the error that reports a mismatch.
type Fields = Vec<(&'static str, u64)>;

fn session_fields(options: &SessionOptions) -> Fields {
    vec![
        ("protocol version", PROTOCOL_VERSION),
        ("ring bits", 64),
        ("fractional bits", u64::from(options.frac_bits)),
        ("weight mode", matches!(options.weights, WeightMode::Owner) as u64),
        ("truncation", matches!(options.truncation, Truncation::Dealer) as u64),
        ("max tokens", options.max_tokens as u64),
        ("reveal", matches!(options.reveal, Reveal::Both) as u64),
        ("material budget", options.material_budget as u64),
        ("material chunk", options.material_chunk as u64),
        ("queries made ahead", options.pool as u64),
    ]
}

fn model_fields(config: &BertConfig, preset: Preset, depth: usize) -> Fields {
    let index = |name: &str, list: &[&str]| list.iter().position(|n| *n == name).unwrap_or(list.len()) as u64;
    let preset_name = preset.name();
    let (activation, attention) = preset_name.split_once('+').unwrap_or(("", ""));
    vec![
        ("vocabulary size", config.vocab_size as u64),
        ("hidden size", config.hidden_size as u64),
        ("layers", depth as u64),
        ("attention heads", config.num_attention_heads as u64),
        ("intermediate size", config.intermediate_size as u64),
        ("position table", config.max_position_embeddings as u64),
        ("position offset", config.position_offset() as u64),
        ("segment types", config.type_vocab_size as u64),
        ("layer-norm epsilon", config.layer_norm_eps.to_bits()),
        ("labels", config.num_labels.map_or(0, |l| l as u64 + 1)),
        ("preset activation", index(activation, &["gelu", "quad", "relu"])),
        ("preset attention", index(attention, &["softmax", "2quad", "2relu"])),
    ]
}

/// Handshake messages are bounded: at most this many fields.
const MAX_FIELDS: usize = 64;

impl<T: Transport, D: Provider> Session<T, D> {
    /// Opens a session as `role` over `peer`, with material from `dealer` (this party's
    /// connected [`DealerClient`](mpc_nn::core::preprocessing::DealerClient), or a reference to
    /// one): agrees on the pairwise input seed with the peer (P0 draws it from `rng`) and
    /// compares the session's public parameters with the peer's before any masked message.
    pub fn connect<G: CryptoRng + ?Sized>(
        role: Role,
        peer: T,
        dealer: D,
        rng: &mut G,
        options: SessionOptions,
    ) -> Result<Self, SessionError> {
        let mut pipeline = Pipeline::new(dealer, role).with_budget(options.material_budget, options.material_chunk);
        if let Some(clock) = options.clock {
            pipeline = pipeline.with_clock(clock);
        }
        let link = Link { inner: peer, rehearsal: false };
        let party = Party::setup(role, link, pipeline, rng)?
            .with_truncation(options.truncation)
            .with_fixed_point(FixedPoint::new(options.frac_bits));
        let backend = Secure::new(party).with_weight_mode(options.weights);
        let mut session = Self { backend, options, model: None, last_tokens: None, prepared: VecDeque::new() };
        session.handshake(&session_fields(&options))?;
        Ok(session)
    }

    /// This party's role.
    pub fn role(&self) -> Role {
        self.backend.party().role()
    }

    /// The session's options.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// The backend (for its meters).
    pub fn backend(&self) -> &SessionBackend<T, D> {
        &self.backend
    }

    /// Lengths whose plan is cached for the loaded model.
    pub fn planned_lengths(&self) -> Vec<usize> {
        self.model.as_ref().map(|m| m.plans.keys().copied().collect()).unwrap_or_default()
    }

    /// Sends our fields' values, receives the peer's, and names the first that differs.
    fn handshake(&mut self, fields: &Fields) -> Result<(), SessionError> {
        if fields.len() > MAX_FIELDS {
            return Err(Error::TooLarge.into());
        }
        let peer = self.role().peer().id();
        let mut ours = Vec::with_capacity(8 * (fields.len() + 1));
        ours.extend_from_slice(&(fields.len() as u64).to_le_bytes());
        for (_, v) in fields {
            ours.extend_from_slice(&v.to_le_bytes());
        }
        let link = self.backend.party_mut().transport_mut();
        link.send(peer, &ours).map_err(Error::transport)?;
        let mut theirs = vec![0u8; ours.len()];
        match link.recv(peer, &mut theirs) {
            Ok(()) => {}
            // Another field count: another protocol version.
            Err(e) if mpc_nn::core::transport::Error::kind(&e) == ErrorKind::LengthMismatch => {
                return Err(SessionError::Mismatch { field: "protocol version", ours: PROTOCOL_VERSION, theirs: 0 });
            }
            Err(e) => return Err(Error::transport(e).into()),
        }
        let word = |b: &[u8], i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        for (i, (field, value)) in fields.iter().enumerate() {
            let other = word(&theirs, i + 1);
            if other != *value {
                return Err(SessionError::Mismatch { field, ours: *value, theirs: other });
            }
        }
        Ok(())
    }

    /// Loads a model: both parties compare its public parameters (configuration, preset,
    /// depth), then P0's weights enter the computation once (`params` at P0, `None` at P1).
    /// A model loaded before is unloaded first. `layers` limits the depth (benchmarks).
    pub fn load(
        &mut self,
        config: &BertConfig,
        preset: Preset,
        params: Option<&Params>,
        layers: Option<usize>,
    ) -> Result<(), SessionError> {
        self.load_observed(config, preset, params, layers, &mut Unobserved)
    }

    /// [`Session::load`], watched by `observer` ([`Phase::Load`]).
    pub fn load_observed(
        &mut self,
        config: &BertConfig,
        preset: Preset,
        params: Option<&Params>,
        layers: Option<usize>,
        observer: &mut dyn SessionObserver<SessionBackend<T, D>>,
    ) -> Result<(), SessionError> {
        if params.is_some() != (self.role() == Role::P0) {
            return Err(SessionError::WrongRole("the model owner (P0), and only it, passes the parameters"));
        }
        self.unload()?;
        config.validate().map_err(ModelError::Config)?;
        let depth = layers.unwrap_or(config.num_hidden_layers).min(config.num_hidden_layers);
        self.handshake(&model_fields(config, preset, depth))?;
        let first_mask = self.pipeline().live().next_mask_id();
        observer.phase_start(&self.backend, Phase::Load);
        let encoder = Encoder::load(&mut self.backend, config, preset, params, layers)?;
        observer.phase_end(&self.backend, Phase::Load);
        self.model = Some(Model { encoder, plans: BTreeMap::new(), first_mask });
        Ok(())
    }

    /// Drops the loaded model, if any, and tells the dealer to forget its masks.
    pub fn unload(&mut self) -> Result<(), SessionError> {
        self.drop_prepared()?;
        self.last_tokens = None;
        if let Some(model) = self.model.take() {
            drop(model.encoder);
            let pipeline = self.pipeline_mut();
            pipeline.forget_opened_from(model.first_mask);
            pipeline.live_mut().release_masks_from(model.first_mask)?;
        }
        Ok(())
    }

    fn pipeline(&self) -> &Pipeline<D, u64> {
        self.backend.party().preprocessing()
    }

    fn pipeline_mut(&mut self) -> &mut Pipeline<D, u64> {
        self.backend.party_mut().preprocessing_mut()
    }

    fn now(&self) -> u64 {
        self.options.clock.map_or(0, |c| c())
    }

    /// The query's length: P1 sends it, P0 checks it against the session's and the model's
    /// bounds and answers (0: accepted; else the bound), so both fail alike on a long query.
    fn exchange_length(&mut self, tokens: Option<&[u32]>, model_max: usize) -> Result<usize, SessionError> {
        let max = self.options.max_tokens.min(model_max);
        let link = self.backend.party_mut().transport_mut();
        match tokens {
            Some(t) => {
                link.send(PartyId::P0, &(t.len() as u64).to_le_bytes()).map_err(Error::transport)?;
                let mut answer = [0u8; 8];
                link.recv(PartyId::P0, &mut answer).map_err(Error::transport)?;
                match u64::from_le_bytes(answer) {
                    0 if (1..=max).contains(&t.len()) => Ok(t.len()),
                    0 => Err(Error::Malformed("the peer accepted a length out of bounds").into()),
                    bound => Err(SessionError::TooLong { tokens: t.len(), max: bound as usize }),
                }
            }
            None => {
                let mut len = [0u8; 8];
                link.recv(PartyId::P1, &mut len).map_err(Error::transport)?;
                let len = u64::from_le_bytes(len);
                if len == END_OF_SESSION {
                    return Err(SessionError::Ended);
                }
                let ok = (1..=max as u64).contains(&len);
                let answer: u64 = if ok { 0 } else { max as u64 };
                link.send(PartyId::P1, &answer.to_le_bytes()).map_err(Error::transport)?;
                if ok {
                    Ok(len as usize)
                } else {
                    Err(SessionError::TooLong { tokens: usize::try_from(len).unwrap_or(usize::MAX), max })
                }
            }
        }
    }

    /// With [`SessionOptions::pool`] = K, queues the next K queries' runs for the last query's
    /// length and makes their material now, while the session is idle, up to the budget: those
    /// queries then cost their online phase (and the material past the budget, made on demand).
    /// A query of another length drops them (their masks are released; its material is made
    /// then). Both parties must call it after the same queries (P1's material requests stay in
    /// step with P0's); it talks to the dealer only, never to the peer. Without a pool, or
    /// before the first query, it does nothing.
    pub fn prepare_next(&mut self) -> Result<(), SessionError> {
        let Some(tokens) = self.last_tokens.filter(|_| self.options.pool > 0) else {
            return Ok(());
        };
        let Some(plan) = self.model.as_ref().and_then(|m| m.plans.get(&tokens)).cloned() else {
            return Ok(());
        };
        while self.prepared.len() < self.options.pool {
            self.pipeline_mut().queue_run(plan.clone());
            self.prepared.push_back(tokens);
        }
        self.pipeline_mut().fill_ahead()?;
        Ok(())
    }

    /// Drops every queued run (material made ahead, and a failed query's own), releasing its
    /// masks (nothing to release when nothing was queued).
    fn drop_prepared(&mut self) -> Result<(), SessionError> {
        self.prepared.clear();
        let pipeline = self.pipeline_mut();
        let masks = pipeline.abandon_runs();
        pipeline.live_mut().release_masks(masks)?;
        Ok(())
    }

    /// One private inference: `tokens` at P1 (the data owner), `None` at P0. The output goes
    /// to P1 only unless the session reveals to both ([`Reveal`]).
    pub fn infer(
        &mut self,
        tokens: Option<&[u32]>,
        observer: &mut dyn SessionObserver<SessionBackend<T, D>>,
    ) -> Result<Inference, SessionError> {
        if tokens.is_some() != (self.role() == Role::P1) {
            return Err(SessionError::WrongRole("the data owner (P1), and only it, passes the tokens"));
        }
        let model = self.model.take().ok_or(SessionError::NoModel)?;
        let result = self.infer_with(&model, tokens, observer);
        let mut model = model;
        if let Ok((_, Some((seq, plan)))) = &result {
            model.plans.insert(*seq, plan.clone());
        }
        self.model = Some(model);
        result.map(|(inference, _)| inference)
    }

    #[allow(clippy::type_complexity)]
    fn infer_with(
        &mut self,
        model: &Model<T, D>,
        tokens: Option<&[u32]>,
        observer: &mut dyn SessionObserver<SessionBackend<T, D>>,
    ) -> Result<(Inference, Option<(usize, Arc<Plan>)>), SessionError> {
        let config = model.encoder.config();
        let seq = self.exchange_length(tokens, config.max_tokens())?;
        if self.prepared.front().is_some_and(|&length| length != seq) {
            self.drop_prepared()?;
        }
        // The front run queued in the pipeline is this query's.
        let prepared = self.prepared.pop_front().is_some();
        let mask = vec![1.0; seq];
        // The rehearsal's stand-in tokens: any valid ids do, the plan depends on shapes only.
        let stand_in = vec![0u32; seq];
        let rehearsal_tokens = tokens.map(|_| &stand_in[..]);

        let start = self.now();
        let (plan, planned) = match model.plans.get(&seq) {
            Some(plan) => (plan.clone(), false),
            None => {
                self.backend.party_mut().transport_mut().rehearsal = true;
                self.pipeline_mut().start_planning();
                let rehearsal = model.encoder.forward(&mut self.backend, rehearsal_tokens, &mask, &mut Unobserved);
                let plan = self.pipeline_mut().finish_planning();
                self.backend.party_mut().transport_mut().rehearsal = false;
                rehearsal?;
                (Arc::new(plan), true)
            }
        };
        // A cached plan costs a lookup, which is no planning: 0, as documented.
        let plan_nanos = if planned { self.now().saturating_sub(start) } else { 0 };
        let before = self.pipeline().stats();
        observer.phase_start(&self.backend, Phase::Offline);
        let start = self.now();
        if !prepared {
            self.pipeline_mut().run(plan.clone());
            self.pipeline_mut().fill_ahead()?;
        }
        let offline_nanos = self.now().saturating_sub(start);
        observer.phase_end(&self.backend, Phase::Offline);

        // A barrier (not metered by the observer) starts both parties' online clocks together.
        self.barrier()?;
        observer.phase_start(&self.backend, Phase::Online);
        let start = self.now();
        let out = model.encoder.forward(&mut self.backend, tokens, &mask, observer)?;
        let output = self.reveal(&out)?;
        let elapsed = self.now().saturating_sub(start);
        observer.phase_end(&self.backend, Phase::Online);

        // This inference's masks (attention products) die with it.
        let finished = match self.pipeline_mut().finish_run() {
            Ok(finished) => finished,
            Err(e) => {
                self.drop_prepared()?;
                return Err(e.into());
            }
        };
        self.pipeline_mut().live_mut().release_masks(finished.masks)?;
        let ahead_nanos = if prepared { finished.ahead_nanos } else { 0 };
        let material = self.pipeline().stats().since(&before);
        self.last_tokens = Some(seq);
        let inference = Inference {
            output,
            tokens: seq,
            planned,
            plan_nanos,
            offline_nanos,
            ahead_nanos,
            online_nanos: elapsed.saturating_sub(material.on_demand_nanos),
            material,
        };
        Ok((inference, planned.then_some((seq, plan))))
    }

    /// One empty-content exchange each way.
    fn barrier(&mut self) -> Result<(), SessionError> {
        let peer = self.role().peer().id();
        let link = self.backend.party_mut().transport_mut();
        link.send(peer, &[0u8]).map_err(Error::transport)?;
        link.recv(peer, &mut [0u8]).map_err(Error::transport)?;
        Ok(())
    }

    fn reveal(&mut self, out: &[u64]) -> Result<Option<Vec<f64>>, SessionError> {
        match self.options.reveal {
            Reveal::Both => Ok(Some(self.backend.reveal(out)?)),
            Reveal::DataOwner => {
                let fixed = self.backend.party().fixed_point();
                let opened = self.backend.party_mut().reveal_to(Role::P1, out)?;
                Ok(opened.map(|v| fixed.decode_vec(&v)))
            }
        }
    }

    /// Ends the session: at P1, tells P0 there are no more queries (P0's waiting
    /// [`Session::infer`] returns [`SessionError::Ended`]); at both, unloads the model (the
    /// dealer forgets its masks). Returns the peer's transport and the provider (end the
    /// dealer's session with
    /// [`DealerClient::finish`](mpc_nn::core::preprocessing::DealerClient::finish)).
    pub fn close(mut self) -> Result<(T, D), SessionError> {
        if self.role() == Role::P1 {
            let link = self.backend.party_mut().transport_mut();
            link.send(PartyId::P0, &END_OF_SESSION.to_le_bytes()).map_err(Error::transport)?;
        }
        self.unload()?;
        let (link, pipeline) = self.backend.into_party().into_parts();
        Ok((link.inner, pipeline.into_live()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that says it hands word buffers over (as one within a process does).
    struct HandsOver;

    impl ErrorType for HandsOver {
        type Error = ErrorKind;
    }

    impl Transport for HandsOver {
        fn send(&mut self, _: PartyId, _: &[u8]) -> Result<(), ErrorKind> {
            Ok(())
        }
        fn recv(&mut self, _: PartyId, _: &mut [u8]) -> Result<(), ErrorKind> {
            Ok(())
        }
        fn hands_over_words(&self) -> bool {
            true
        }
    }

    /// The session's link hands buffers over when its transport does, except in a rehearsal,
    /// whose messages go nowhere (a copy to hand over would be wasted).
    #[test]
    fn the_link_hands_words_over_as_its_transport_does_except_in_a_rehearsal() {
        let mut link = Link { inner: HandsOver, rehearsal: false };
        assert!(link.hands_over_words());
        link.rehearsal = true;
        assert!(!link.hands_over_words());
    }
}
