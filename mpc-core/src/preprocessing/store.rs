//! Material made ahead of time: a [`Store`] consumed in order, and the [`Pipeline`] that plans a
//! program from its shapes, then makes its material in bounded chunks, ahead or on demand.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::deal;
use super::{MaskId, Material, Preprocessing, Request};
use crate::error::Error;
use crate::ring::Ring;
use crate::share::Shares;
use crate::transport::Role;

/// A queue of material made in the offline phase and consumed, in order, in the online phase.
///
/// Each consumption is checked against the request it answers: a store filled for another
/// program yields [`Error::MaterialMismatch`], never wrong results.
#[derive(Debug)]
pub struct Store<R: Ring> {
    pub(super) queue: VecDeque<(Request, Material<R>)>,
}

impl<R: Ring> Default for Store<R> {
    fn default() -> Self {
        Self { queue: VecDeque::new() }
    }
}

impl<R: Ring> Store<R> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes material for `requests` with `provider` (one batch) and appends it.
    pub fn fill<P: Preprocessing<R> + ?Sized>(&mut self, provider: &mut P, requests: &[Request]) -> Result<(), Error> {
        let made = provider.materials(requests)?;
        self.queue.extend(requests.iter().copied().zip(made));
        Ok(())
    }

    /// Entries not yet consumed.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl<R: Ring> Preprocessing<R> for Store<R> {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        match self.queue.front() {
            None => Err(Error::MaterialExhausted),
            // A matmul triple stored for a mask is valid under the identity the mask had when
            // stored; the request must name the same one.
            Some((stored, _)) if stored != request => Err(Error::MaterialMismatch),
            Some(_) => Ok(self.queue.pop_front().expect("front exists").1),
        }
    }
}

/// The material plan of a program: the requests it makes, in order. Shapes only: a plan holds no
/// value, and the masks the program creates carry provisional identities, renamed when made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    requests: Vec<Request>,
}

impl Plan {
    /// The requests, in order.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// Ring elements of material one party holds for the whole plan (an upper bound).
    pub fn elements<R: Ring>(&self) -> usize {
        self.requests.iter().map(elements::<R>).sum()
    }
}

/// Masks created while planning get identities from here up, far above any real one.
const PROVISIONAL: MaskId = 1 << 62;

/// Ring elements of one party's material for `request` (random and correlated parts).
fn elements<R: Ring>(request: &Request) -> usize {
    let layout = request.layout::<R>();
    layout.random.iter().chain(layout.correlated.iter()).map(|(len, _)| len).sum()
}

fn mask_id<R: Ring>(m: &Material<R>) -> Option<MaskId> {
    match m {
        Material::MatmulMask(m) | Material::OwnedMask(m) => Some(m.id),
        _ => None,
    }
}

fn renamed(request: &Request, names: &BTreeMap<MaskId, MaskId>) -> Request {
    let rename = |mask: MaskId| names.get(&mask).copied().unwrap_or(mask);
    match *request {
        Request::MatmulTriple { m, k, n, mask } => Request::MatmulTriple { m, k, n, mask: rename(mask) },
        Request::OwnedTriple { m, k, n, mask } => Request::OwnedTriple { m, k, n, mask: rename(mask) },
        other => other,
    }
}

/// What the pipeline is doing.
#[derive(Debug)]
enum Mode {
    /// Material comes live from the provider (loading a model, say).
    Live,
    /// A rehearsal on shapes: every request is noted and answered with zeros.
    Planning { plan: Plan, next_mask: MaskId },
    /// A plan is being run: its material is made in chunks, ahead or when the store runs dry.
    /// `provisional` is the planned identity of the next mask to make; `names` maps planned
    /// identities to the real ones.
    Running { plan: Arc<Plan>, made: usize, provisional: MaskId, names: BTreeMap<MaskId, MaskId> },
}

/// Counters of a pipeline's offline work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Chunks made.
    pub chunks: u64,
    /// Chunks made on demand, because the store ran dry while the program ran.
    pub chunks_on_demand: u64,
    /// Ring elements of material made.
    pub elements: u64,
    /// The most ring elements held in the store at once.
    pub peak_elements: u64,
    /// Nanoseconds spent making material on demand (when a clock is set).
    pub on_demand_nanos: u64,
}

impl PipelineStats {
    /// The counters since `earlier` (the peak stays the all-time peak).
    pub fn since(&self, earlier: &PipelineStats) -> PipelineStats {
        PipelineStats {
            chunks: self.chunks - earlier.chunks,
            chunks_on_demand: self.chunks_on_demand - earlier.chunks_on_demand,
            elements: self.elements - earlier.elements,
            peak_elements: self.peak_elements,
            on_demand_nanos: self.on_demand_nanos - earlier.on_demand_nanos,
        }
    }
}

/// A monotonic clock in nanoseconds (the std side passes one; no_std integrators may).
pub type Clock = fn() -> u64;

/// The material of a program, from its plan to its consumption, in bounded memory.
///
/// 1. **Plan from shapes**: [`Pipeline::start_planning`], run the program on a transport that
///    carries nothing (every request is answered with zeros, no provider is asked),
///    [`Pipeline::finish_planning`]. The plan depends on shapes only: cache it.
/// 2. **Offline**: [`Pipeline::run`] the plan, then [`Pipeline::fill_ahead`] makes its material
///    in chunks of at most `chunk` ring elements until `budget` elements are held.
/// 3. **Online**: run the program; it consumes the store in order (each piece checked against the
///    request it answers), and a dry store is refilled with the next chunk on the spot, so a
///    program whose material exceeds the budget still runs with at most budget + chunk held.
/// 4. [`Pipeline::finish_run`] checks the plan was consumed exactly.
///
/// Triples for a registered weight mask ([`Preprocessing::opened_mask`]) get their input-free
/// product A · F folded in as they are made. Outside a run, requests go to the live provider.
pub struct Pipeline<P, R: Ring> {
    live: P,
    role: Role,
    mode: Mode,
    store: Store<R>,
    stored_elements: usize,
    budget: usize,
    chunk: usize,
    /// The opened F of each registered weight mask: (rows, columns, F).
    opened: BTreeMap<MaskId, (usize, usize, Arc<Shares<R>>)>,
    clock: Option<Clock>,
    /// An on-demand refill whose meeting with the peer is pending: its start (clock reading).
    refill_started: Option<u64>,
    stats: PipelineStats,
}

impl<P, R: Ring> core::fmt::Debug for Pipeline<P, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pipeline").field("role", &self.role).field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// Default budget: 2^25 ring elements (256 MiB of u64) held ahead, per party. A BERT-base
/// inference at 128 tokens needs about four times that: the rest is made on demand, in chunks,
/// while it runs (both parties refill at the same step and meet there). Raise it to make a whole
/// query's material ahead; lower it on small machines.
pub const DEFAULT_BUDGET: usize = 1 << 25;
/// Default chunk: 2^22 ring elements (32 MiB of u64) per batch to the dealer.
pub const DEFAULT_CHUNK: usize = 1 << 22;

impl<P: Preprocessing<R>, R: Ring> Pipeline<P, R> {
    /// An empty pipeline in front of `live`, for `role`, with the default budget and chunk.
    pub fn new(live: P, role: Role) -> Self {
        Self {
            live,
            role,
            mode: Mode::Live,
            store: Store::new(),
            stored_elements: 0,
            budget: DEFAULT_BUDGET,
            chunk: DEFAULT_CHUNK,
            opened: BTreeMap::new(),
            clock: None,
            refill_started: None,
            stats: PipelineStats::default(),
        }
    }

    /// Holds at most `budget` ring elements ahead, made in chunks of at most `chunk` (a single
    /// request larger than a chunk is made alone).
    pub fn with_budget(mut self, budget: usize, chunk: usize) -> Self {
        self.budget = budget;
        self.chunk = chunk.max(1);
        self
    }

    /// Times on-demand chunks with `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Starts a rehearsal: requests are noted and answered with zeros until
    /// [`Pipeline::finish_planning`].
    pub fn start_planning(&mut self) {
        self.mode = Mode::Planning { plan: Plan::default(), next_mask: PROVISIONAL };
    }

    /// Ends the rehearsal and returns its plan.
    pub fn finish_planning(&mut self) -> Plan {
        match core::mem::replace(&mut self.mode, Mode::Live) {
            Mode::Planning { plan, .. } => plan,
            other => {
                self.mode = other;
                Plan::default()
            }
        }
    }

    /// Runs `plan` next: its material is made by [`Pipeline::fill_ahead`] and on demand.
    /// Material left from an earlier run is dropped.
    pub fn run(&mut self, plan: Arc<Plan>) {
        self.store = Store::new();
        self.stored_elements = 0;
        self.mode = Mode::Running { plan, made: 0, provisional: PROVISIONAL, names: BTreeMap::new() };
    }

    /// Makes chunks of the running plan until the budget is held or the plan is all made.
    pub fn fill_ahead(&mut self) -> Result<(), Error> {
        while self.stored_elements < self.budget && self.fill_chunk()? {}
        Ok(())
    }

    /// Ends the run: every piece of the plan was made and consumed, or
    /// [`Error::MaterialMismatch`].
    pub fn finish_run(&mut self) -> Result<(), Error> {
        let done = match &self.mode {
            Mode::Running { plan, made, .. } => *made == plan.requests.len() && self.store.is_empty(),
            _ => true,
        };
        self.abandon_run();
        if done { Ok(()) } else { Err(Error::MaterialMismatch) }
    }

    /// Drops the running plan and the material made for it (a run made ahead for a query that
    /// did not come). The masks it made stay with the provider until released.
    pub fn abandon_run(&mut self) {
        self.mode = Mode::Live;
        self.store = Store::new();
        self.stored_elements = 0;
    }

    /// Forgets the opened masks registered with identity `from` or later.
    pub fn forget_opened_from(&mut self, from: MaskId) {
        drop(self.opened.split_off(&from));
    }

    /// The offline counters so far.
    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    /// The live provider.
    pub fn live(&self) -> &P {
        &self.live
    }

    /// Unwraps the live provider.
    pub fn into_live(self) -> P {
        self.live
    }

    /// The live provider, mutably.
    pub fn live_mut(&mut self) -> &mut P {
        &mut self.live
    }

    /// Makes the next chunk of the running plan; `false` when there is nothing left to make.
    /// The chunk's masks are made first (one batch, to learn their identities), then the rest
    /// (a second batch), with every triple renamed to its mask's real identity.
    fn fill_chunk(&mut self) -> Result<bool, Error> {
        let Mode::Running { plan, made, provisional, names } = &mut self.mode else { return Ok(false) };
        let start = *made;
        if start == plan.requests.len() {
            return Ok(false);
        }
        let mut end = start;
        let mut size = 0;
        while end < plan.requests.len() && (end == start || size + elements::<R>(&plan.requests[end]) <= self.chunk) {
            size += elements::<R>(&plan.requests[end]);
            end += 1;
        }
        let chunk = &plan.requests[start..end];
        let mask_requests: Vec<Request> = chunk.iter().copied().filter(Request::is_mask).collect();
        let mut masks = self.live.materials(&mask_requests)?.into_iter();
        let mut ordered: Vec<Option<(Request, Material<R>)>> = Vec::with_capacity(chunk.len());
        for r in chunk {
            if r.is_mask() {
                // Planned masks were numbered in plan order from PROVISIONAL.
                let m = masks.next().ok_or(Error::MaterialExhausted)?;
                names.insert(*provisional, mask_id(&m).ok_or(Error::MaterialMismatch)?);
                *provisional += 1;
                ordered.push(Some((*r, m)));
            } else {
                ordered.push(None);
            }
        }
        let others: Vec<Request> = chunk.iter().filter(|r| !r.is_mask()).map(|r| renamed(r, names)).collect();
        let mut made_others = self.live.materials(&others)?.into_iter().zip(others);
        for slot in ordered {
            let (request, mut material) = match slot {
                Some(mask) => mask,
                None => {
                    let (m, r) = made_others.next().ok_or(Error::MaterialExhausted)?;
                    (r, m)
                }
            };
            if let Material::MatmulTriple(t) | Material::OwnedTriple(t) = &mut material
                && let Some((k, n, f)) = self.opened.get(&t.mask)
            {
                crate::protocol::absorb(t, *k, *n, f)?;
            }
            self.store.queue.push_back((request, material));
        }
        *made = end;
        self.stored_elements += size;
        self.stats.chunks += 1;
        self.stats.elements += size as u64;
        self.stats.peak_elements = self.stats.peak_elements.max(self.stored_elements as u64);
        Ok(true)
    }
}

impl<P: Preprocessing<R>, R: Ring> Preprocessing<R> for Pipeline<P, R> {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        match &mut self.mode {
            Mode::Live => return self.live.material(request),
            Mode::Planning { plan, next_mask } => {
                request.validate::<R>(deal::MAX_REQUEST_ELEMENTS)?;
                let id = *next_mask;
                if request.is_mask() {
                    *next_mask += 1;
                }
                plan.requests.push(*request);
                return Ok(deal::into_material(request, deal::zeros(self.role, request), id));
            }
            Mode::Running { .. } => {}
        }
        if self.store.is_empty() {
            let start = self.clock.map_or(0, |c| c());
            if !self.fill_chunk()? {
                return Err(Error::MaterialExhausted);
            }
            self.stats.chunks_on_demand += 1;
            // Timed until the parties have met (`refill_met`): the peer's refill is waiting too.
            self.refill_started = Some(start);
        }
        let material = self.store.material(request)?;
        self.stored_elements = self.stored_elements.saturating_sub(elements::<R>(request));
        Ok(material)
    }

    fn opened_mask(&mut self, mask: MaskId, k: usize, n: usize, f: Arc<Shares<R>>) {
        self.opened.insert(mask, (k, n, f));
    }

    fn refilled(&mut self) -> bool {
        self.refill_started.is_some()
    }

    fn refill_met(&mut self) {
        if let (Some(start), Some(clock)) = (self.refill_started.take(), self.clock) {
            self.stats.on_demand_nanos += clock().saturating_sub(start);
        }
    }
}
