//! Runs P0, P1 and the dealer as threads of this process, over channels.
//!
//! Each party gets a [`PartyContext`]: its metered link to the peer (the online traffic) and its
//! client of the dealer (the offline traffic, metered apart). The launcher ends the dealer's
//! session when the parties are done and returns each party's output and counts. A party that
//! fails drops its links, so the others fail fast with [`ErrorKind::Disconnected`] instead of
//! hanging; the launcher reports the root cause.

use std::thread;
use std::time::{Duration, Instant};

use mpc_core::preprocessing::{Dealer, DealerClient, DealerStats};
use mpc_core::share::Prg;
use mpc_core::transport::{CommStats, ErrorKind, Metered, PartyId, Role};
use mpc_core::{Error, Party};

use crate::transport::channel::ChannelTransport;

/// The transport type of a threaded party (to its peer, or to the dealer).
pub type ThreadedTransport = Metered<ChannelTransport>;

/// A threaded party's protocol engine, borrowing its context.
pub type ThreadedParty<'a> = Party<u64, &'a mut ThreadedTransport, &'a mut DealerClient<ThreadedTransport>>;

/// The randomness of `role`'s process or thread: from the OS, or (insecure, reproducible) from
/// `seed` on a stream per party.
pub fn party_rng(seed: Option<[u8; 32]>, who: PartyId) -> Result<Prg, LaunchError> {
    match seed {
        Some(seed) => {
            let mut rng = <Prg as rand_core::SeedableRng>::from_seed(seed);
            rng.set_stream(who.index() as u64);
            Ok(rng)
        }
        None => crate::os_rng().map_err(|_| LaunchError::Entropy),
    }
}

/// A 32-byte seed from a number (for `--insecure-seed`).
pub fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

/// Settings of a threaded run.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LaunchOptions {
    /// Receive timeout of every link.
    pub timeout: Duration,
    /// Derive every party's randomness from this seed instead of the OS: reproducible runs for
    /// tests and benchmarks. **Never** for real use: whoever knows the seed knows every share.
    pub insecure_seed: Option<[u8; 32]>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        Self { timeout: ChannelTransport::DEFAULT_TIMEOUT, insecure_seed: None }
    }
}

impl LaunchOptions {
    /// Reproducible randomness from `seed` (see [`LaunchOptions::insecure_seed`]).
    pub fn seeded(seed: u64) -> Self {
        Self { insecure_seed: Some(seed_bytes(seed)), ..Self::default() }
    }
}

/// What one party works with: its link to the peer over transport `T` and to the dealer over
/// `D` (channels for threads, TCP + TLS for processes).
pub struct PartyContext<T: mpc_core::Transport = ChannelTransport, D: mpc_core::Transport = T> {
    /// This party's role.
    pub role: Role,
    /// The metered link to the other computing party.
    pub peer: Metered<T>,
    /// This party's client of the dealer (its transport is metered apart).
    pub dealer: DealerClient<Metered<D>>,
    /// A cryptographic RNG seeded by the OS.
    pub rng: Prg,
}

impl<T: mpc_core::Transport, D: mpc_core::Transport> PartyContext<T, D> {
    /// Opens the two-party session (P0 sends the pairwise input seed to P1).
    #[allow(clippy::type_complexity)]
    pub fn party(&mut self) -> Result<Party<u64, &mut Metered<T>, &mut DealerClient<Metered<D>>>, Error> {
        Party::setup(self.role, &mut self.peer, &mut self.dealer, &mut self.rng)
    }
}

/// One party's result.
#[derive(Clone, Debug)]
pub struct PartyOutcome<O> {
    /// What the party's closure returned.
    pub output: O,
    /// Traffic with the other party.
    pub peer: CommStats,
    /// Traffic with the dealer.
    pub dealer: CommStats,
    /// Wall time of the party's closure.
    pub seconds: f64,
}

/// The result of a threaded run.
#[derive(Clone, Debug)]
pub struct ThreadedRun<O> {
    /// P0's result.
    pub p0: PartyOutcome<O>,
    /// P1's result.
    pub p1: PartyOutcome<O>,
    /// What the dealer served.
    pub dealer: DealerStats,
    /// Wall time of the whole run.
    pub seconds: f64,
}

impl<O> ThreadedRun<O> {
    /// Bytes both parties sent to each other.
    pub fn peer_bytes(&self) -> u64 {
        self.p0.peer.bytes_sent + self.p1.peer.bytes_sent
    }
}

/// Why a threaded run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LaunchError {
    /// A party or the dealer returned an error.
    Failed {
        /// Who failed first (a disconnect caused by another failure is not the root cause).
        party: PartyId,
        /// The error.
        error: Error,
    },
    /// A thread panicked.
    Panicked(PartyId),
    /// The OS gave no randomness.
    Entropy,
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::Failed { party, error } => write!(f, "{party} failed: {error}"),
            LaunchError::Panicked(party) => write!(f, "{party} panicked"),
            LaunchError::Entropy => f.write_str("no randomness from the operating system"),
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn metered(t: ChannelTransport, timeout: Duration) -> ThreadedTransport {
    Metered::new(t.with_timeout(timeout))
}

/// Runs `program` as P0 and as P1 in two threads, with the dealer in a third.
///
/// `program` is the public program both parties follow; it branches on `ctx.role` only for
/// what a party owns (its input or its weights).
pub fn run_threaded<O, F>(options: LaunchOptions, program: F) -> Result<ThreadedRun<O>, LaunchError>
where
    O: Send,
    F: Fn(&mut PartyContext) -> Result<O, Error> + Sync,
{
    run_threaded_over(options, |t| t, program)
}

/// [`run_threaded`] with each party's link to its peer wrapped by `wrap` (a shaping decorator,
/// say); the dealer links stay plain channels.
pub fn run_threaded_over<T, O, W, F>(options: LaunchOptions, wrap: W, program: F) -> Result<ThreadedRun<O>, LaunchError>
where
    T: mpc_core::Transport + Send,
    O: Send,
    W: Fn(ChannelTransport) -> T + Sync,
    F: Fn(&mut PartyContext<T, ChannelTransport>) -> Result<O, Error> + Sync,
{
    let (p0_p1, p1_p0) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
    let (p0_d, d_p0) = ChannelTransport::pair(PartyId::P0, PartyId::Dealer);
    let (p1_d, d_p1) = ChannelTransport::pair(PartyId::P1, PartyId::Dealer);
    let mut dealer_link = d_p0.join(d_p1).with_timeout(options.timeout);
    let rng0 = party_rng(options.insecure_seed, PartyId::P0)?;
    let rng1 = party_rng(options.insecure_seed, PartyId::P1)?;
    let mut dealer_rng = party_rng(options.insecure_seed, PartyId::Dealer)?;
    let start = Instant::now();

    let run_party = |role: Role, peer: ChannelTransport, dealer: ChannelTransport, rng: Prg| {
        let t0 = Instant::now();
        let client = DealerClient::connect(role, metered(dealer, options.timeout))?;
        let peer = Metered::new(wrap(peer.with_timeout(options.timeout)));
        let mut ctx = PartyContext { role, peer, dealer: client, rng };
        let output = program(&mut ctx)?;
        let PartyContext { peer, dealer, .. } = ctx;
        let dealer_link = dealer.finish()?;
        Ok(PartyOutcome {
            output,
            peer: peer.stats(),
            dealer: dealer_link.stats(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    };

    let (r0, r1, rd) = thread::scope(|s| {
        // Named, so that profilers and panics tell the three apart.
        let named = |name: &str| thread::Builder::new().name(name.into());
        let spawned = "spawning a party thread";
        let h0 = named("p0").spawn_scoped(s, || run_party(Role::P0, p0_p1, p0_d, rng0)).expect(spawned);
        let h1 = named("p1").spawn_scoped(s, || run_party(Role::P1, p1_p0, p1_d, rng1)).expect(spawned);
        let hd = named("dealer")
            .spawn_scoped(s, move || Dealer::<u64>::new(&mut dealer_rng).serve(&mut dealer_link))
            .expect(spawned);
        (h0.join(), h1.join(), hd.join())
    });

    let r0: Result<PartyOutcome<O>, Error> = r0.map_err(|_| LaunchError::Panicked(PartyId::P0))?;
    let r1: Result<PartyOutcome<O>, Error> = r1.map_err(|_| LaunchError::Panicked(PartyId::P1))?;
    let rd = rd.map_err(|_| LaunchError::Panicked(PartyId::Dealer))?;
    match (r0, r1, rd) {
        (Ok(p0), Ok(p1), Ok(dealer)) => Ok(ThreadedRun { p0, p1, dealer, seconds: start.elapsed().as_secs_f64() }),
        (r0, r1, rd) => {
            let failures = [(PartyId::P0, r0.err()), (PartyId::P1, r1.err()), (PartyId::Dealer, rd.err())];
            let failures: Vec<(PartyId, Error)> = failures.into_iter().filter_map(|(p, e)| e.map(|e| (p, e))).collect();
            let root = failures
                .iter()
                .find(|(_, e)| *e != Error::Transport(ErrorKind::Disconnected))
                .or(failures.first())
                .copied()
                .expect("at least one failure");
            Err(LaunchError::Failed { party: root.0, error: root.1 })
        }
    }
}
