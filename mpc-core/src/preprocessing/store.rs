//! Material made ahead of time: a [`Store`] consumed in order, and the [`Pipeline`] that plans a
//! program from its shapes, then makes its material in bounded chunks, ahead or on demand.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use super::deal;
use super::{MaskId, Material, Preprocessing, Request};
use crate::error::Error;
use crate::gemm::RightOperand;
use crate::ring::Ring;
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
        Material::MatmulMask(m) | Material::OwnedMask(m) | Material::OwnedTable(m, _) => Some(m.id),
        _ => None,
    }
}

fn renamed(request: &Request, names: &BTreeMap<MaskId, MaskId>) -> Request {
    let rename = |mask: MaskId| names.get(&mask).copied().unwrap_or(mask);
    match *request {
        Request::MatmulTriple { m, k, n, mask } => Request::MatmulTriple { m, k, n, mask: rename(mask) },
        Request::OwnedTriple { m, k, n, mask } => Request::OwnedTriple { m, k, n, mask: rename(mask) },
        Request::OwnedLookup { m, k, n, mask } => Request::OwnedLookup { m, k, n, mask: rename(mask) },
        other => other,
    }
}

/// One plan being run: its material is made in chunks, ahead or when the store runs dry.
#[derive(Debug)]
struct Run {
    plan: Arc<Plan>,
    /// Requests of the plan made so far.
    made: usize,
    /// Pieces made and not yet consumed (in the store, after the earlier runs' pieces).
    stored: usize,
    /// The planned identity of the next mask to make.
    provisional: MaskId,
    /// Planned identities to the real ones.
    names: BTreeMap<MaskId, MaskId>,
    /// The real identities of the masks made for it (consecutive: runs are made in order).
    masks: Option<Range<MaskId>>,
    /// Nanoseconds spent making its material ahead (by the clock).
    ahead_nanos: u64,
}

impl Run {
    fn new(plan: Arc<Plan>) -> Self {
        Self { plan, made: 0, stored: 0, provisional: PROVISIONAL, names: BTreeMap::new(), masks: None, ahead_nanos: 0 }
    }

    fn all_made(&self) -> bool {
        self.made == self.plan.requests.len()
    }
}

/// What the pipeline is doing.
#[derive(Debug)]
enum Mode {
    /// Material comes live from the provider (loading a model, say).
    Live,
    /// A rehearsal on shapes: every request is noted and answered with zeros.
    Planning { plan: Plan, next_mask: MaskId },
    /// Plans are run in order: the front one is the program's now, the others are queued and
    /// made once the ones before them are all made.
    Running(VecDeque<Run>),
}

/// What a run leaves when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedRun {
    /// The identities of the masks made for it: release them with the provider
    /// ([`MaskRelease::release_masks`](super::MaskRelease::release_masks)).
    pub masks: Range<MaskId>,
    /// Nanoseconds spent making its material by [`Pipeline::fill_ahead`] (by the clock).
    pub ahead_nanos: u64,
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
/// 4. [`Pipeline::finish_run`] checks the plan was consumed exactly, and names the masks it made.
///
/// Runs can be queued ([`Pipeline::queue_run`]): the material of the next queries is then made
/// ahead, in order, within the same budget, and each program consumes only its own run's.
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
    /// The opened F of each registered weight mask.
    opened: BTreeMap<MaskId, Arc<RightOperand<R>>>,
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
/// Default chunk: 2^18 ring elements (2 MiB of u64) per batch to the dealer. Small chunks are
/// made right before they are used (still in cache) and in buffers the allocator reuses (larger
/// ones are fresh pages each time, which the kernel faults in and clears): on BERT-base at 128
/// tokens, 2^18 against 2^22 took the material made on demand from 2.8 to 2.1 s and the online
/// phase from 1.21 to 1.15 s. Each chunk is a round trip to the dealer (about 700 per such
/// query): with a distant dealer, raise it ([`Pipeline::with_budget`], `SessionOptions::material`).
pub const DEFAULT_CHUNK: usize = 1 << 18;

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
    /// Runs queued before are dropped with their material (their masks stay with the provider
    /// until released: [`Pipeline::abandon_runs`] names them).
    pub fn run(&mut self, plan: Arc<Plan>) {
        self.abandon_runs();
        self.queue_run(plan);
    }

    /// Queues `plan` to run after the runs queued before: its material is made once theirs is,
    /// ahead ([`Pipeline::fill_ahead`]) or on demand when it is the program's.
    pub fn queue_run(&mut self, plan: Arc<Plan>) {
        match &mut self.mode {
            Mode::Running(runs) => runs.push_back(Run::new(plan)),
            _ => self.mode = Mode::Running(VecDeque::from([Run::new(plan)])),
        }
    }

    /// Runs queued (the program's, if running, included).
    pub fn queued_runs(&self) -> usize {
        match &self.mode {
            Mode::Running(runs) => runs.len(),
            _ => 0,
        }
    }

    /// Makes chunks of the queued runs, in order, until the budget is held or they are all made.
    pub fn fill_ahead(&mut self) -> Result<(), Error> {
        while self.stored_elements < self.budget {
            let start = self.clock.map_or(0, |c| c());
            let Some(run) = self.fill_chunk()? else { break };
            let nanos = self.clock.map_or(0, |c| c().saturating_sub(start));
            if let Mode::Running(runs) = &mut self.mode {
                runs[run].ahead_nanos += nanos;
            }
        }
        Ok(())
    }

    /// Ends the program's run (the front one): returns what it leaves if every piece of its
    /// plan was made and consumed, else [`Error::MaterialMismatch`] and the runs stay (drop
    /// them with [`Pipeline::abandon_runs`]). The next queued run becomes the program's.
    pub fn finish_run(&mut self) -> Result<FinishedRun, Error> {
        let Mode::Running(runs) = &mut self.mode else {
            return Ok(FinishedRun { masks: 0..0, ahead_nanos: 0 });
        };
        match runs.front() {
            Some(run) if run.all_made() && run.stored == 0 => {}
            _ => return Err(Error::MaterialMismatch),
        }
        let run = runs.pop_front().expect("a front run");
        if runs.is_empty() {
            self.mode = Mode::Live;
        }
        Ok(FinishedRun { masks: run.masks.unwrap_or(0..0), ahead_nanos: run.ahead_nanos })
    }

    /// Drops every queued run and the material made for them (runs made ahead for queries that
    /// did not come) and returns the identities of the masks they made (to release with the
    /// provider).
    pub fn abandon_runs(&mut self) -> Range<MaskId> {
        let masks = match core::mem::replace(&mut self.mode, Mode::Live) {
            Mode::Running(runs) => {
                let mut made = runs.iter().filter_map(|r| r.masks.clone());
                let first = made.next().unwrap_or(0..0);
                made.fold(first, |all, m| all.start.min(m.start)..all.end.max(m.end))
            }
            other => {
                self.mode = other;
                0..0
            }
        };
        self.store = Store::new();
        self.stored_elements = 0;
        masks
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

    /// Makes the next chunk of the first run not all made; returns its index in the queue, or
    /// `None` when there is nothing left to make. The chunk's masks are made first (one batch,
    /// to learn their identities), then the rest (a second batch), with every triple renamed to
    /// its mask's real identity.
    fn fill_chunk(&mut self) -> Result<Option<usize>, Error> {
        let Mode::Running(runs) = &mut self.mode else { return Ok(None) };
        let Some(index) = runs.iter().position(|r| !r.all_made()) else { return Ok(None) };
        let run = &mut runs[index];
        let requests = &run.plan.requests;
        let start = run.made;
        let mut end = start;
        let mut size = 0;
        while end < requests.len() && (end == start || size + elements::<R>(&requests[end]) <= self.chunk) {
            size += elements::<R>(&requests[end]);
            end += 1;
        }
        let chunk = &requests[start..end];
        let mask_requests: Vec<Request> = chunk.iter().copied().filter(Request::is_mask).collect();
        let mut masks = self.live.materials(&mask_requests)?.into_iter();
        let mut ordered: Vec<Option<(Request, Material<R>)>> = Vec::with_capacity(chunk.len());
        for r in chunk {
            if r.is_mask() {
                // Planned masks were numbered in plan order from PROVISIONAL.
                let m = masks.next().ok_or(Error::MaterialExhausted)?;
                let id = mask_id(&m).ok_or(Error::MaterialMismatch)?;
                run.names.insert(run.provisional, id);
                run.provisional += 1;
                run.masks = Some(run.masks.as_ref().map_or(id..id + 1, |m| m.start.min(id)..m.end.max(id + 1)));
                ordered.push(Some((*r, m)));
            } else {
                ordered.push(None);
            }
        }
        let others: Vec<Request> = chunk.iter().filter(|r| !r.is_mask()).map(|r| renamed(r, &run.names)).collect();
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
                && let Some(f) = self.opened.get(&t.mask)
            {
                crate::protocol::absorb(t, f)?;
            }
            self.store.queue.push_back((request, material));
        }
        run.stored += end - start;
        run.made = end;
        self.stored_elements += size;
        self.stats.chunks += 1;
        self.stats.elements += size as u64;
        self.stats.peak_elements = self.stats.peak_elements.max(self.stored_elements as u64);
        Ok(Some(index))
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
            Mode::Running(runs) => match runs.front() {
                // The program's own material only: never a queued run's, even for the same request.
                Some(run) if run.stored == 0 && run.all_made() => return Err(Error::MaterialExhausted),
                Some(_) => {}
                None => return self.live.material(request),
            },
        }
        if self.store.is_empty() {
            let start = self.clock.map_or(0, |c| c());
            // Runs are made in order: the store is empty only while the front one is unmade.
            if self.fill_chunk()?.is_none() {
                return Err(Error::MaterialExhausted);
            }
            self.stats.chunks_on_demand += 1;
            // Timed until the parties have met (`refill_met`): the peer's refill is waiting too.
            self.refill_started = Some(start);
        }
        let material = self.store.material(request)?;
        self.stored_elements = self.stored_elements.saturating_sub(elements::<R>(request));
        if let Mode::Running(runs) = &mut self.mode
            && let Some(run) = runs.front_mut()
        {
            run.stored -= 1;
        }
        Ok(material)
    }

    fn opened_mask(&mut self, mask: MaskId, f: Arc<RightOperand<R>>) {
        self.opened.insert(mask, f);
    }

    fn refilled(&mut self) -> bool {
        self.refill_started.is_some()
    }

    fn rehearsing(&self) -> bool {
        matches!(self.mode, Mode::Planning { .. })
    }

    fn refill_met(&mut self) {
        if let (Some(start), Some(clock)) = (self.refill_started.take(), self.clock) {
            self.stats.on_demand_nanos += clock().saturating_sub(start);
        }
    }

    fn recycle(&mut self, used: crate::share::Shares<R>) {
        self.live.recycle(used);
    }

    fn mask_owned(&mut self, w: crate::share::Shares<R>, k: usize, n: usize) -> Result<super::MatmulMask<R>, Error> {
        match self.mode {
            // What `material` would ask the provider for, asked in the provider's own way.
            Mode::Live => self.live.mask_owned(w, k, n),
            _ => super::subtract_owned_mask(self, w, k, n),
        }
    }
}
