//! Two-party protocols over additive shares, run by one [`Party`].
//!
//! Both computing parties run the same public program; each call below is a step of it, made by
//! both parties in the same order. Costs, per party (n = number of elements):
//!
//! | step | rounds | ring elements sent |
//! |---|---|---|
//! | [`Party::input`] | 0 | 0 (seeded zero-sharing) |
//! | [`Party::open`] | 1 | n |
//! | [`Party::reveal_to`] | 1 | n by the sender only |
//! | [`Party::mul`] (Beaver) | 1 | 2n |
//! | [`Party::square`] | 1 | n |
//! | [`Party::matmul`] (m×k · k×n) | 1 | mk + kn |
//! | [`Party::matmul_prepared`] | 1 | mk (W - B was opened once by [`Party::prepare_matrix`]) |
//! | [`Party::matmul_owned_ring`] (W known to P0) | 1 | mk by P1 only (F = W - B sent once by [`Party::prepare_owned`]) |
//! | [`Party::matmul_owned`], its dealer truncation included | 2 one-way | mk + mn by P1, mn/64 by P0 |
//! | truncation, [`Truncation::Local`] | 0 | 0 |
//! | truncation, [`Truncation::Dealer`] | 1 | n |
//! | [`Party::truncate_square_many`] (dealer truncation, then a local square) | 1 | n |
//!
//! | [`Party::ltz`] (x < 0) | 6 | 8n + ~7n/8 (digit tables from the dealer, packed bits) |
//! | [`Party::relu`] | 7 | ltz + 2n |
//! | [`Party::select`] | 1 | 2n |
//! | [`Party::max_rows`] (rows of length L) | 7·⌈log2 L⌉ | per level: ltz + select |
//!
//! Several independent multiplications open in one round with [`Party::mul_many`]; any set of
//! openings shares one message with [`Party::open_many`].
//!
//! Fixed-point products carry 2f fractional bits and are truncated by f after each
//! multiplication (see [`Truncation`] for the two methods and their error bounds). No step
//! branches on a share value.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;

use crate::error::Error;
use crate::fixed::FixedPoint;
use crate::gemm::{RightOperand, Width};
use crate::preprocessing::deal::{broadcast_index, broadcast_len};
use crate::preprocessing::{MaskId, MatmulMask, MatmulTriple, Preprocessing, PreprocessingExt};
use crate::ring::{self, Ring};
use crate::share::{Seed, Shares, ZeroSharing};
use crate::transport::{PartyId, Role, Transport};
use crate::wire;

pub(crate) mod compare;
pub mod cost;
mod fused;
pub mod lookup;

pub use fused::FusedOperands;
pub use lookup::{BATCHED_LOOKUP_FROM, LOOKUP_SLOTS, TABLE_BUCKETS, lookup_bins, lookup_by_bins};

/// How a product's extra f fractional bits are removed.
///
/// The default is [`Truncation::Dealer`]: its result is wrong for no element whose value is in
/// range, so an inference's chance of a wrong element is 0, not merely below 2^-40. Local
/// truncation cannot reach 2^-40 at all in Z_2^64 with f = 16: one element of magnitude 1 fails
/// with probability 2^-31, and a BERT-base inference truncates about 2^27 elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Truncation {
    /// Each party shifts its own share (SecureML; CrypTen's 2-party method). No communication.
    /// The result is within 1 ulp of x / 2^f, except with probability about |x| / 2^(k-1) per
    /// element (x read at 2f fractional bits, k = ring bits), when the shares wrap around the
    /// ring and the result is garbage: 2^-29 for a product of magnitude 4 at f = 16 in Z_2^64,
    /// so that a 12-layer BERT-base inference (about 2^27 truncated elements of magnitude up
    /// to a few units) returns garbage a few times in a hundred. An explicit option only, for
    /// measurements and for small programs whose failure probability the caller has bounded.
    Local,
    /// Opens x + 2^(k-2) + r for a dealer pair (r, r >> f, msb r): one round, n elements each
    /// way. The opening is uniform whatever x, and the result is always within 1 ulp of
    /// x / 2^f for |x| < 2^(k-2) (values below 2^30 in magnitude at f = 16): the only wrap,
    /// of x + 2^(k-2) + r past 2^k, is exactly the one that msb(r) and msb(c) tell apart.
    /// (Narrow truncations inside fused products and comparisons leave their low bits home and
    /// land within 1.5 units.)
    #[default]
    Dealer,
}

impl Truncation {
    /// The method's name in reports and on the command line: `local` or `dealer`.
    pub const fn name(self) -> &'static str {
        match self {
            Truncation::Local => "local",
            Truncation::Dealer => "dealer",
        }
    }
}

/// The operands of a secret matrix product: X (m × k), Y (k × n), m, k, n.
pub type MatmulOperands<'a, R> = (&'a [R], &'a [R], usize, usize, usize);

/// A broadcast product: X (rows × len), y (`rows` values if the flag is set, else `len`), rows,
/// len, per-row flag.
pub type BroadcastOperands<'a, R> = (&'a [R], &'a [R], usize, usize, bool);

/// A matrix W (k × n, secret-shared) prepared for repeated products X · W: the mask B was drawn
/// and W - B opened once, so each product opens only X - A.
pub struct PreparedMatrix<R: Ring> {
    mask: MaskId,
    k: usize,
    n: usize,
    /// The public F = W - B (shared with the provider, for the input-free products).
    f: Arc<RightOperand<R>>,
    /// This party's share of B, plus F at P0: the right operand of E · (B + F).
    b_eff: RightOperand<R>,
}

impl<R: Ring> PreparedMatrix<R> {
    /// The mask's identity (the triples of this matrix name it).
    pub fn mask(&self) -> MaskId {
        self.mask
    }
    /// The opened F = W - B: with a triple's A, the product A · F needs no input.
    pub fn opened(&self) -> &Arc<RightOperand<R>> {
        &self.f
    }
    /// Rows of W.
    pub fn rows(&self) -> usize {
        self.k
    }
    /// Columns of W.
    pub fn cols(&self) -> usize {
        self.n
    }
}

impl<R: Ring> core::fmt::Debug for PreparedMatrix<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PreparedMatrix({}x{}, mask {})", self.k, self.n, self.mask)
    }
}

/// A matrix W (k × n) that P0 owns in the clear, prepared for repeated products X · W with
/// secret X: P0 drew a mask B that only it knows and sent F = W - B to P1 once.
pub struct OwnedMatrix<R: Ring> {
    mask: MaskId,
    k: usize,
    n: usize,
    /// P0: W (packed, where the CPU's kernel has a packed form: owner weights need few byte
    /// limbs); P1: F = W - B (public to P1, which multiplies it by its A offline).
    held: Arc<RightOperand<R>>,
    /// A table read by rows ([`Party::prepare_owned_table`]): held unpacked, its rows in this
    /// order (by bucket), its lookups by bins.
    order: Option<Arc<lookup::TableBins>>,
}

impl<R: Ring> OwnedMatrix<R> {
    /// The mask's identity (the triples of this matrix name it).
    pub fn mask(&self) -> MaskId {
        self.mask
    }
    /// At P1, F = W - B, whose product with a triple's A needs no input; `None` at P0.
    pub fn opened(&self, role: Role) -> Option<&Arc<RightOperand<R>>> {
        (role == Role::P1).then_some(&self.held)
    }
    /// Rows of W.
    pub fn rows(&self) -> usize {
        self.k
    }
    /// Columns of W.
    pub fn cols(&self) -> usize {
        self.n
    }
    /// For a table ([`Party::prepare_owned_table`]), the bin `row` falls in for a lookup of `m`
    /// rows by bins (public: both parties know the table's key); `None` for another matrix, a
    /// row outside it, or a lookup that takes the one-hot product.
    pub fn lookup_bin(&self, row: usize, m: usize) -> Option<usize> {
        let order = self.order.as_ref().filter(|_| row < self.k && lookup_by_bins(m))?;
        Some(order.bin_of(row, lookup_bins(m)))
    }
}

impl<R: Ring> core::fmt::Debug for OwnedMatrix<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "OwnedMatrix({}x{}, mask {})", self.k, self.n, self.mask)
    }
}

/// One computing party of a two-party session: its role, its link to the peer, its source of
/// correlated randomness and the fixed-point format.
pub struct Party<R: Ring, T: Transport, P: Preprocessing<R>> {
    role: Role,
    transport: T,
    preprocessing: P,
    zero_sharing: ZeroSharing,
    fixed: FixedPoint,
    truncation: Truncation,
    /// The peer's shares of the last opening (public once combined), kept for the next one:
    /// a fresh buffer per round costs page faults on every line.
    received: Vec<R>,
}

impl<R: Ring, T: Transport, P: Preprocessing<R>> Party<R, T, P> {
    /// Opens a session: P0 draws the pairwise input seed and sends it to P1 (one 32-byte message).
    pub fn setup<G: CryptoRng + ?Sized>(
        role: Role,
        mut transport: T,
        preprocessing: P,
        rng: &mut G,
    ) -> Result<Self, Error> {
        let seed = match role {
            Role::P0 => {
                let seed = Seed::random(rng);
                transport.send(PartyId::P1, seed.as_bytes()).map_err(Error::transport)?;
                seed
            }
            Role::P1 => {
                let mut bytes = [0u8; Seed::LEN];
                transport.recv(PartyId::P0, &mut bytes).map_err(Error::transport)?;
                let seed = Seed::from_bytes(bytes);
                zeroize::Zeroize::zeroize(&mut bytes);
                seed
            }
        };
        Ok(Self::with_seed(role, transport, preprocessing, &seed))
    }

    /// A session whose pairwise input seed was agreed out of band.
    pub fn with_seed(role: Role, transport: T, preprocessing: P, pairwise: &Seed) -> Self {
        Self {
            role,
            transport,
            preprocessing,
            zero_sharing: ZeroSharing::new(pairwise),
            fixed: FixedPoint::default(),
            truncation: Truncation::default(),
            received: Vec::new(),
        }
    }

    /// Sets the fixed-point format (both parties must agree).
    pub fn with_fixed_point(mut self, fixed: FixedPoint) -> Self {
        self.fixed = fixed;
        self
    }

    /// Sets the truncation method (both parties must agree).
    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    /// This party's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The fixed-point format.
    pub fn fixed_point(&self) -> FixedPoint {
        self.fixed
    }

    /// The truncation method.
    pub fn truncation(&self) -> Truncation {
        self.truncation
    }

    /// The link to the peer.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The link to the peer, mutably (for messages of a procedure around the protocol: a
    /// handshake, a length).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The source of correlated randomness.
    pub fn preprocessing(&self) -> &P {
        &self.preprocessing
    }

    /// The source of correlated randomness, mutably (to fill a store ahead of time, say).
    pub fn preprocessing_mut(&mut self) -> &mut P {
        &mut self.preprocessing
    }

    /// Ends the session, returning the transport and the provider.
    pub fn into_parts(self) -> (T, P) {
        (self.transport, self.preprocessing)
    }

    fn peer(&self) -> PartyId {
        self.role.peer().id()
    }

    pub(crate) fn is_p0(&self) -> bool {
        self.role == Role::P0
    }

    /// Takes material from the provider; when the provider had to make it on demand, meets
    /// the peer (one byte each way) before going on, at the same step at both parties.
    pub(crate) fn material<M>(&mut self, get: impl FnOnce(&mut P) -> Result<M, Error>) -> Result<M, Error> {
        let material = get(&mut self.preprocessing)?;
        if self.preprocessing.refilled() {
            let peer = self.peer();
            self.transport.send(peer, &[0]).map_err(Error::transport)?;
            self.transport.recv(peer, &mut [0]).map_err(Error::transport)?;
            self.preprocessing.refill_met();
        }
        Ok(material)
    }

    /// Hands used material's buffers back to the provider ([`Preprocessing::recycle`]).
    pub(crate) fn recycle(&mut self, used: impl IntoIterator<Item = Shares<R>>) {
        for buffer in used {
            self.preprocessing.recycle(buffer);
        }
    }

    // ---------------------------------------------------------------- input and output

    /// Secret-shares `n` values owned by `owner`, without any message: the owner passes
    /// `Some(values)` and keeps `x - r`, the other party passes `None` and keeps `r`, where `r`
    /// comes from the pairwise seed.
    pub fn input(&mut self, owner: Role, values: Option<&[R]>, n: usize) -> Result<Shares<R>, Error> {
        let mut r = self.zero_sharing.masks::<R>(n);
        match (owner == self.role, values) {
            (true, Some(x)) if x.len() == n => {
                for (ri, xi) in r.iter_mut().zip(x) {
                    *ri = xi.wrapping_sub(ri);
                }
                Ok(r)
            }
            (false, None) => Ok(r),
            _ => Err(Error::ShapeMismatch),
        }
    }

    /// [`Party::input`] of reals, encoded in the session's fixed-point format.
    pub fn input_fixed(&mut self, owner: Role, values: Option<&[f64]>, n: usize) -> Result<Shares<R>, Error> {
        let encoded: Option<Vec<R>> = values.map(|v| self.fixed.encode_vec(v));
        self.input(owner, encoded.as_deref(), n)
    }

    /// Opens `x` to both parties: one round, n elements each way.
    pub fn open(&mut self, x: &[R]) -> Result<Vec<R>, Error> {
        Ok(self.open_many(&[x])?.pop().expect("one opening"))
    }

    /// Opens several sharings in one round and one message per party.
    pub fn open_many(&mut self, xs: &[&[R]]) -> Result<Vec<Vec<R>>, Error> {
        self.exchange_and_combine(xs, |a, b| a.wrapping_add(&b))
    }

    /// Sends this party's shares of every `xs[i]` in one message, receives the peer's, and
    /// combines each pair of shares with `combine`.
    pub(crate) fn exchange_and_combine(
        &mut self,
        xs: &[&[R]],
        combine: impl Fn(R, R) -> R,
    ) -> Result<Vec<Vec<R>>, Error> {
        let total: usize = xs.iter().map(|x| x.len()).sum();
        let peer = self.peer();
        wire::send(&mut self.transport, peer, xs)?;
        if let [x] = xs {
            // One sharing: combined where the peer's shares arrived (no second buffer).
            let mut theirs = vec![R::ZERO; total];
            wire::recv(&mut self.transport, peer, &mut theirs)?;
            for (t, &a) in theirs.iter_mut().zip(x.iter()) {
                *t = combine(a, *t);
            }
            return Ok(alloc::vec![theirs]);
        }
        let theirs = self.receive(total)?;
        let mut out = Vec::with_capacity(xs.len());
        let mut offset = 0;
        for x in xs {
            out.push(x.iter().zip(&theirs[offset..offset + x.len()]).map(|(&a, &b)| combine(a, b)).collect());
            offset += x.len();
        }
        self.received = theirs;
        Ok(out)
    }

    /// Opens this party's shares `mine` in their own buffer: sends them, adds the peer's, and
    /// returns the opened values there (public now, so no longer wiped).
    pub(crate) fn open_owned(&mut self, mut mine: Shares<R>) -> Result<Vec<R>, Error> {
        let peer = self.peer();
        wire::send(&mut self.transport, peer, &[&mine])?;
        let n = mine.len();
        let theirs = self.receive(n)?;
        ring::add_assign(&mut mine, &theirs[..n]);
        self.received = theirs;
        Ok(mine.into_vec())
    }

    /// Opens this party's shares `mine` of a truncation shifted by `shift`, mod 2^`width`:
    /// packed on the wire ([`wire::pack_low_bits`]) without their `shift` low bits when
    /// narrower than the ring, in whole words at its width ([`Segment::truncated`]); the opened
    /// values, in [0, 2^width), in `mine`'s buffer.
    pub(crate) fn open_low_bits(&mut self, mine: Shares<R>, width: u32, shift: u32) -> Result<Vec<R>, Error> {
        let len = mine.len();
        self.open_in_widths(mine, &[Segment::truncated::<R>(len, width, shift)])
    }

    /// Opens this party's shares `mine`, consecutive [`Segment`]s of it each mod 2^width
    /// without its skipped low bits, in one message: each segment that is not the full ring
    /// packed on its sent bits from a fresh word ([`wire::pack_low_bits`]).
    pub(crate) fn open_in_widths(&mut self, mut mine: Shares<R>, segments: &[Segment]) -> Result<Vec<R>, Error> {
        if segments.iter().map(|s| s.len).sum::<usize>() != mine.len()
            || segments.iter().any(|s| s.width > R::BITS || s.skip + 3 > s.width)
        {
            return Err(Error::ShapeMismatch);
        }
        if segments.iter().all(|s| s.sent_bits::<R>() == R::BITS) {
            return self.open_owned(mine);
        }
        let total: usize = segments.iter().map(Segment::words::<R>).sum();
        let p0 = self.is_p0();
        let mut packed = Shares::zeros(total);
        let (mut at, mut word) = (0, 0);
        for s in segments {
            s.pack(&mine[at..at + s.len], p0, &mut packed[word..word + s.words::<R>()]);
            (at, word) = (at + s.len, word + s.words::<R>());
        }
        let peer = self.peer();
        wire::send_owned(&mut self.transport, peer, packed)?;
        let theirs = self.receive(total)?;
        let (mut at, mut word) = (0, 0);
        let mut opened = Ok(());
        for s in segments {
            opened = opened.and(s.open(&theirs[word..word + s.words::<R>()], &mut mine[at..at + s.len], p0));
            (at, word) = (at + s.len, word + s.words::<R>());
        }
        self.received = theirs;
        opened?;
        Ok(mine.into_vec())
    }

    /// The peer's next message of `n` elements, at the start of the kept buffer (the caller
    /// puts it back).
    fn receive(&mut self, n: usize) -> Result<Vec<R>, Error> {
        let peer = self.peer();
        if self.transport.hands_over_words() {
            // The peer's own buffer ([`wire::send`]): neither copied nor wiped, as the kept
            // buffer is not (what arrives is an opening's or a masked value's share).
            return Ok(wire::recv_owned(&mut self.transport, peer, n)?.into_vec());
        }
        let mut theirs = core::mem::take(&mut self.received);
        // The buffer only grows: the message overwrites its first n elements.
        if theirs.len() < n {
            theirs.resize(n, R::ZERO);
        }
        wire::recv(&mut self.transport, peer, &mut theirs[..n])?;
        Ok(theirs)
    }

    /// Reveals `x` to `to` only: the other party sends its share (one message). Returns the
    /// secret at `to`, `None` at the sender.
    pub fn reveal_to(&mut self, to: Role, x: &[R]) -> Result<Option<Vec<R>>, Error> {
        let peer = self.peer();
        if self.role == to {
            let mut theirs = Shares::zeros(x.len());
            wire::recv(&mut self.transport, peer, &mut theirs)?;
            let mut v = x.to_vec();
            ring::add_assign(&mut v, &theirs);
            Ok(Some(v))
        } else {
            wire::send(&mut self.transport, peer, &[x])?;
            Ok(None)
        }
    }

    /// Opens `x` and decodes it from fixed point.
    pub fn open_fixed(&mut self, x: &[R]) -> Result<Vec<f64>, Error> {
        let v = self.open(x)?;
        Ok(self.fixed.decode_vec(&v))
    }

    // ---------------------------------------------------------------- local steps

    /// Adds a public vector to a sharing (P0 adds, P1 keeps its share).
    pub fn add_public(&self, x: &mut [R], c: &[R]) -> Result<(), Error> {
        if x.len() != c.len() {
            return Err(Error::ShapeMismatch);
        }
        if self.is_p0() {
            ring::add_assign(x, c);
        }
        Ok(())
    }

    /// Adds a public constant to every element.
    pub fn add_public_scalar(&self, x: &mut [R], c: R) {
        if self.is_p0() {
            for v in x.iter_mut() {
                *v = v.wrapping_add(&c);
            }
        }
    }

    /// Multiplies by a public fixed-point constant: local, then truncated.
    pub fn mul_public_scalar(&mut self, x: &[R], c: f64) -> Result<Shares<R>, Error> {
        let c: R = self.fixed.encode(c);
        let z = Shares::from_vec(x.iter().map(|v| v.wrapping_mul(&c)).collect());
        self.truncate(z)
    }

    // ---------------------------------------------------------------- truncation

    /// Removes f fractional bits from a sharing of a value with 2f, by the session's method.
    pub fn truncate(&mut self, z: Shares<R>) -> Result<Shares<R>, Error> {
        Ok(self.truncate_many(vec![z])?.pop().expect("one sharing"))
    }

    /// Truncates several sharings (with [`Truncation::Dealer`], in one round).
    pub fn truncate_many(&mut self, zs: Vec<Shares<R>>) -> Result<Vec<Shares<R>>, Error> {
        self.truncate_many_by(zs, self.fixed.frac_bits(), self.truncation)
    }

    /// Shifts several sharings right by `bits` with the given method (for computations that
    /// run at another precision than the session's).
    pub fn truncate_many_by(
        &mut self,
        zs: Vec<Shares<R>>,
        bits: u32,
        method: Truncation,
    ) -> Result<Vec<Shares<R>>, Error> {
        if bits + 2 >= R::BITS {
            return Err(Error::TooLarge);
        }
        if bits == 0 {
            return Ok(zs);
        }
        match method {
            Truncation::Local => Ok(zs
                .into_iter()
                .map(|mut z| {
                    truncate_local(self.role, &mut z, bits);
                    z
                })
                .collect()),
            Truncation::Dealer => self.truncate_dealer(zs, bits),
        }
    }

    /// Truncation with dealer pairs: open c = x + 2^(k-2) + r; then
    /// x >> f = c >> f - r >> f + msb(r)·(1 - msb(c))·2^(k-f) - 2^(k-2-f), up to the borrow of
    /// the low bits (error in [0, 1] ulp). Valid for |x| < 2^(k-2). The opening goes in whole
    /// words ([`Segment::truncated`]).
    ///
    /// The material's buffers are reused: the opening is written over r, the result over r >> f.
    fn truncate_dealer(&mut self, zs: Vec<Shares<R>>, f: u32) -> Result<Vec<Shares<R>>, Error> {
        let lens: Vec<usize> = zs.iter().map(|z| z.len()).collect();
        let total = lens.iter().sum();
        let mut pairs = self.material(|p| p.trunc(total, f))?;
        if [pairs.r.len(), pairs.r_hi.len(), pairs.r_msb.len()] != [total; 3] {
            return Err(Error::MaterialMismatch);
        }
        let p0 = self.is_p0();
        let masked =
            masked_for_truncation(zs.iter().flat_map(|z| z.iter()), core::mem::take(&mut pairs.r), p0, R::BITS);
        let c = self.open_low_bits(masked, R::BITS, f)?;
        let mut t = core::mem::take(&mut pairs.r_hi);
        for ((t, &c), &msb) in t.iter_mut().zip(&c).zip(pairs.r_msb.iter()) {
            *t = truncated_share(p0, (f, R::BITS), c, c.msb(), *t, msb);
        }
        Ok(split_at_lens(t, &lens))
    }

    /// Truncates ring products by `bits` and squares them shifted by a public `offset` (ring
    /// encoded at the truncated precision): (x >> bits + offset)², a ring value at twice that
    /// precision (no truncation). With [`Truncation::Dealer`] the square costs no message:
    /// after the opening c, the truncation's result is y = p + q·msb(r) - (r >> f) with
    /// p = c >> f - 2^(k-2-f) and q = (1 - msb c)·2^(k-f) public, so that, writing P = p +
    /// offset and h = r >> f,
    ///
    /// (y + offset)² = P² - 2P·h + h² + 2Pq·msb(r) - 2q·msb(r)·h   (q² = 0 in Z_2^k for f <= k/2)
    ///
    /// is linear in the dealer's shares of h, msb(r), h² and msb(r)·h: one round and n elements
    /// each way instead of two rounds and 2n. With local truncation, a Beaver square follows.
    pub fn truncate_square_many(
        &mut self,
        zs: Vec<Shares<R>>,
        bits: u32,
        offset: R,
        method: Truncation,
    ) -> Result<Vec<Shares<R>>, Error> {
        if method == Truncation::Local || bits > R::BITS / 2 {
            let lens: Vec<usize> = zs.iter().map(|z| z.len()).collect();
            let truncated = self.truncate_many_by(zs, bits, method)?;
            let mut y = Shares::from_vec(truncated.iter().flat_map(|t| t.iter().copied()).collect());
            self.add_public_scalar(&mut y, offset);
            return Ok(split_like(self.square_ring(&y)?.iter().copied(), lens.into_iter()));
        }
        let lens: Vec<usize> = zs.iter().map(|z| z.len()).collect();
        let total = lens.iter().sum();
        let mut pairs = self.material(|p| p.trunc_square(total, bits))?;
        let t = &mut pairs.trunc;
        if [t.r.len(), t.r_hi.len(), t.r_msb.len(), pairs.r_hi_sq.len(), pairs.msb_r_hi.len()] != [total; 5] {
            return Err(Error::MaterialMismatch);
        }
        let p0 = self.is_p0();
        // The opening is written over r, the squares over the shares of (r >> f)².
        let masked = masked_for_truncation(zs.iter().flat_map(|z| z.iter()), core::mem::take(&mut t.r), p0, R::BITS);
        let c = self.open_low_bits(masked, R::BITS, bits)?;
        let two = R::ONE.wrapping_add(&R::ONE);
        let mut squares = core::mem::take(&mut pairs.r_hi_sq);
        let t = &pairs.trunc;
        for (j, square) in squares.iter_mut().enumerate() {
            let public = truncation_public(c[j], bits, R::BITS).wrapping_add(&offset);
            let q = truncation_wrap(c[j].msb(), bits, R::BITS);
            let two_p = two.wrapping_mul(&public);
            let share = square
                .wrapping_sub(&two_p.wrapping_mul(&t.r_hi[j]))
                .wrapping_add(&two_p.wrapping_mul(&q).wrapping_mul(&t.r_msb[j]))
                .wrapping_sub(&two.wrapping_mul(&q).wrapping_mul(&pairs.msb_r_hi[j]));
            *square = if p0 { share.wrapping_add(&public.wrapping_mul(&public)) } else { share };
        }
        Ok(split_at_lens(squares, &lens))
    }

    // ---------------------------------------------------------------- multiplication

    /// Elementwise fixed-point product of two sharings: one Beaver round, then truncation.
    pub fn mul(&mut self, x: &[R], y: &[R]) -> Result<Shares<R>, Error> {
        Ok(self.mul_many(&[(x, y)])?.pop().expect("one product"))
    }

    /// Several independent fixed-point products, opened in one round.
    pub fn mul_many(&mut self, pairs: &[(&[R], &[R])]) -> Result<Vec<Shares<R>>, Error> {
        let z = self.mul_many_ring(pairs)?;
        self.truncate_many(z)
    }

    /// Several elementwise ring products (no truncation), opened in one round.
    pub fn mul_many_ring(&mut self, pairs: &[(&[R], &[R])]) -> Result<Vec<Shares<R>>, Error> {
        if pairs.iter().any(|(x, y)| x.len() != y.len()) {
            return Err(Error::ShapeMismatch);
        }
        let total: usize = pairs.iter().map(|(x, _)| x.len()).sum();
        let t = self.material(|p| p.beaver(total))?;
        let mut e = Shares::zeros(total);
        let mut f = Shares::zeros(total);
        let xs = pairs.iter().flat_map(|(x, _)| x.iter());
        let ys = pairs.iter().flat_map(|(_, y)| y.iter());
        for (i, (x, y)) in xs.zip(ys).enumerate() {
            e[i] = x.wrapping_sub(&t.a[i]);
            f[i] = y.wrapping_sub(&t.b[i]);
        }
        let opened = self.open_many(&[&e, &f])?;
        let (e, f) = (&opened[0], &opened[1]);
        let p0 = self.is_p0();
        let z = (0..total).map(|i| {
            let z = t.c[i].wrapping_add(&e[i].wrapping_mul(&t.b[i])).wrapping_add(&f[i].wrapping_mul(&t.a[i]));
            if p0 { z.wrapping_add(&e[i].wrapping_mul(&f[i])) } else { z }
        });
        Ok(split_like(z, pairs.iter().map(|(x, _)| x.len())))
    }

    /// Products of matrices (`rows × len`) with vectors repeated along an axis, ring results (no
    /// truncation), all in one round: each opens the matrix's mask (n elements) but only the
    /// short vector's (rows or len), where a plain Beaver product would open 2n.
    pub fn mul_broadcast_many_ring(&mut self, items: &[BroadcastOperands<'_, R>]) -> Result<Vec<Shares<R>>, Error> {
        Ok(self.square_and_broadcast_ring(&[], items)?.1)
    }

    /// Elementwise fixed-point square: one round with a square pair (half a multiply's traffic).
    pub fn square(&mut self, x: &[R]) -> Result<Shares<R>, Error> {
        let z = self.square_ring(x)?;
        self.truncate(z)
    }

    /// Elementwise ring square (no truncation).
    pub fn square_ring(&mut self, x: &[R]) -> Result<Shares<R>, Error> {
        Ok(self.square_and_broadcast_ring(x, &[])?.0)
    }

    /// The ring squares of `x` and the broadcast products `items` (as
    /// [`Party::mul_broadcast_many_ring`]), independent of each other, in one round: every
    /// masked operand goes in one message.
    pub fn square_and_broadcast_ring(
        &mut self,
        x: &[R],
        items: &[BroadcastOperands<'_, R>],
    ) -> Result<(Shares<R>, Vec<Shares<R>>), Error> {
        let short = |&(_, _, rows, len, per_row): &BroadcastOperands<'_, R>| broadcast_len(rows, len, Some(per_row));
        if items.iter().any(|it| it.0.len() != it.2 * it.3 || it.1.len() != short(it)) {
            return Err(Error::ShapeMismatch);
        }
        let pairs = if x.is_empty() { None } else { Some(self.material(|p| p.square(x.len()))?) };
        let triples = items
            .iter()
            .map(|&(_, _, rows, len, per_row)| self.material(|p| p.broadcast_triples(rows, len, per_row)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut masked: Vec<Vec<R>> = Vec::with_capacity(1 + 2 * items.len());
        if let Some(pairs) = &pairs {
            masked.push(x.iter().zip(pairs.r.iter()).map(|(x, r)| x.wrapping_sub(r)).collect());
        }
        for (&(x, y, ..), t) in items.iter().zip(&triples) {
            masked.push(x.iter().zip(t.a.iter()).map(|(x, a)| x.wrapping_sub(a)).collect());
            masked.push(y.iter().zip(t.b.iter()).map(|(y, b)| y.wrapping_sub(b)).collect());
        }
        let refs: Vec<&[R]> = masked.iter().map(|v| v.as_slice()).collect();
        let mut opened = self.open_many(&refs)?.into_iter();
        let p0 = self.is_p0();
        let squares = match &pairs {
            None => Shares::zeros(0),
            Some(pairs) => {
                let e = opened.next().expect("e");
                let two = R::ONE.wrapping_add(&R::ONE);
                let z = (0..x.len())
                    .map(|i| {
                        let z = pairs.r2[i].wrapping_add(&two.wrapping_mul(&e[i]).wrapping_mul(&pairs.r[i]));
                        if p0 { z.wrapping_add(&e[i].wrapping_mul(&e[i])) } else { z }
                    })
                    .collect();
                Shares::from_vec(z)
            }
        };
        let mut products = Vec::with_capacity(items.len());
        for (&(_, _, _, len, per_row), t) in items.iter().zip(triples) {
            let (e, f) = (opened.next().expect("e"), opened.next().expect("f"));
            let at = |i: usize| broadcast_index(len, Some(per_row), i);
            let z = (0..e.len())
                .map(|i| {
                    let j = at(i);
                    let z = t.c[i].wrapping_add(&e[i].wrapping_mul(&t.b[j])).wrapping_add(&t.a[i].wrapping_mul(&f[j]));
                    if p0 { z.wrapping_add(&e[i].wrapping_mul(&f[j])) } else { z }
                })
                .collect();
            products.push(Shares::from_vec(z));
        }
        Ok((squares, products))
    }

    /// Fixed-point product of two secret matrices X (m×k) and Y (k×n): one round opening
    /// X - A and Y - B together, then truncation.
    pub fn matmul(&mut self, x: &[R], y: &[R], m: usize, k: usize, n: usize) -> Result<Shares<R>, Error> {
        let z = self.matmul_ring(x, y, m, k, n)?;
        self.truncate(z)
    }

    /// Ring product of two secret matrices (no truncation).
    pub fn matmul_ring(&mut self, x: &[R], y: &[R], m: usize, k: usize, n: usize) -> Result<Shares<R>, Error> {
        Ok(self.matmul_many_ring(&[(x, y, m, k, n)])?.pop().expect("one product"))
    }

    /// Several fixed-point products of secret matrices `(x, y, m, k, n)`, all opened in one round.
    pub fn matmul_many(&mut self, products: &[MatmulOperands<'_, R>]) -> Result<Vec<Shares<R>>, Error> {
        let z = self.matmul_many_ring(products)?;
        self.truncate_many(z)
    }

    /// Several ring products of secret matrices (no truncation), all opened in one round.
    pub fn matmul_many_ring(&mut self, products: &[MatmulOperands<'_, R>]) -> Result<Vec<Shares<R>>, Error> {
        if products.iter().any(|&(x, y, m, k, n)| x.len() != m * k || y.len() != k * n) {
            return Err(Error::ShapeMismatch);
        }
        let mut material = Vec::with_capacity(products.len());
        for &(_, _, m, k, n) in products {
            let mask = self.material(|p| p.matmul_mask(k, n))?;
            let triple = self.material(|p| p.matmul_triple(m, k, n, mask.id))?;
            material.push((mask, triple));
        }
        let mut masked: Vec<Vec<R>> = Vec::with_capacity(2 * products.len());
        for (&(x, y, ..), (mask, triple)) in products.iter().zip(&material) {
            masked.push(x.iter().zip(triple.a.iter()).map(|(x, a)| x.wrapping_sub(a)).collect());
            masked.push(y.iter().zip(mask.b.iter()).map(|(y, b)| y.wrapping_sub(b)).collect());
        }
        let refs: Vec<&[R]> = masked.iter().map(|v| v.as_slice()).collect();
        let mut opened = self.open_many(&refs)?.into_iter();
        let mut out = Vec::with_capacity(products.len());
        for (&(_, _, m, k, n), (mask, triple)) in products.iter().zip(material) {
            let e = opened.next().expect("e per product");
            let f = opened.next().expect("f per product");
            if self.preprocessing.rehearsing() {
                out.push(triple.c);
                continue;
            }
            let prepared = self.prepared_from(mask.id, k, n, f, mask.b);
            out.push(self.combine(&e, &triple.a, triple.c, triple.absorbed, &prepared, m));
        }
        Ok(out)
    }

    /// Prepares a secret matrix W (k×n) for repeated products: draws a mask B and opens W - B
    /// (one round, kn elements each). Do it once per loaded model, not per inference.
    pub fn prepare_matrix(&mut self, w: &[R], k: usize, n: usize) -> Result<PreparedMatrix<R>, Error> {
        Ok(self.prepare_matrices(&[(w, k, n)])?.pop().expect("one matrix"))
    }

    /// Prepares several matrices in one round.
    pub fn prepare_matrices(&mut self, ws: &[(&[R], usize, usize)]) -> Result<Vec<PreparedMatrix<R>>, Error> {
        if ws.iter().any(|(w, k, n)| w.len() != k * n) {
            return Err(Error::ShapeMismatch);
        }
        let masks =
            ws.iter().map(|&(_, k, n)| self.material(|p| p.matmul_mask(k, n))).collect::<Result<Vec<_>, _>>()?;
        let masked: Vec<Vec<R>> = ws
            .iter()
            .zip(&masks)
            .map(|((w, _, _), mask)| w.iter().zip(mask.b.iter()).map(|(w, b)| w.wrapping_sub(b)).collect())
            .collect();
        let refs: Vec<&[R]> = masked.iter().map(|v| v.as_slice()).collect();
        let opened = self.open_many(&refs)?;
        drop(masked);
        let prepared: Vec<PreparedMatrix<R>> = opened
            .into_iter()
            .zip(masks)
            .map(|(f, mask)| self.prepared_from(mask.id, mask.k, mask.n, f, mask.b))
            .collect();
        // The provider may fold A · F into this matrix's triples as it makes them.
        for w in &prepared {
            self.preprocessing.opened_mask(w.mask, w.f.clone());
        }
        Ok(prepared)
    }

    /// The prepared form of a matrix from its opened F = W - B and this party's share of B
    /// (which becomes B + F at P0, in place).
    fn prepared_from(&self, mask: MaskId, k: usize, n: usize, f: Vec<R>, b: Shares<R>) -> PreparedMatrix<R> {
        let mut b_eff = b;
        if self.is_p0() {
            ring::add_assign(&mut b_eff, &f);
        }
        let f = Arc::new(RightOperand::new(k, n, Shares::from_vec(f), Width::Full));
        PreparedMatrix { mask, k, n, f, b_eff: RightOperand::new(k, n, b_eff, Width::Full) }
    }

    /// Fixed-point product X (m×k, secret) · W (prepared): one round opening X - A only.
    pub fn matmul_prepared(&mut self, x: &[R], m: usize, w: &PreparedMatrix<R>) -> Result<Shares<R>, Error> {
        let z = self.matmul_prepared_ring(x, m, w)?;
        self.truncate(z)
    }

    /// Ring product X · W with a prepared W (no truncation).
    pub fn matmul_prepared_ring(&mut self, x: &[R], m: usize, w: &PreparedMatrix<R>) -> Result<Shares<R>, Error> {
        if x.len() != m * w.k {
            return Err(Error::ShapeMismatch);
        }
        let mut triple = self.material(|p| p.matmul_triple(m, w.k, w.n, w.mask))?;
        if triple.a.len() != x.len() {
            return Err(Error::MaterialMismatch);
        }
        // E = X - A is opened; made over A when the offline phase absorbed A · F (A is not
        // needed again), else beside it.
        let mut mine = if triple.absorbed { core::mem::take(&mut triple.a) } else { triple.a.clone() };
        for (e, x) in mine.iter_mut().zip(x) {
            *e = x.wrapping_sub(e);
        }
        let e = self.open_owned(mine)?;
        let c = core::mem::take(&mut triple.c);
        Ok(self.combine(&e, &triple.a, c, triple.absorbed, w, m))
    }

    /// Z = C + E · (B + [P0] F) + A · F, the share of X · W given E = X - A and F = W - B.
    fn combine(&self, e: &[R], a: &[R], c: Shares<R>, absorbed: bool, w: &PreparedMatrix<R>, m: usize) -> Shares<R> {
        let mut z = c;
        if self.preprocessing.rehearsing() {
            w.b_eff.warm_for(m);
            return z;
        }
        w.b_eff.gemm_acc(m, e, &mut z);
        if !absorbed {
            w.f.gemm_acc(m, a, &mut z);
        }
        z
    }
}

impl<R: Ring, T: Transport, P: Preprocessing<R>> Party<R, T, P> {
    /// Prepares P0's own matrix W (k × n, ring-encoded; `Some` at P0, `None` at P1) for
    /// products with secret activations: P0 sends F = W - B for a mask B that only it knows
    /// (one message of kn elements, once per loaded model). P1 learns nothing: B is uniform.
    ///
    /// F is made in W's buffer ([`Preprocessing::mask_owned`]): pass W owned (a `Vec`) to
    /// spare a copy of the largest thing the owner loads; a borrowed W is copied once.
    pub fn prepare_owned(&mut self, w: Option<impl Into<Vec<R>>>, k: usize, n: usize) -> Result<OwnedMatrix<R>, Error> {
        let peer = self.peer();
        let (mask, held) = match (self.role, w.map(|w| Shares::from_vec(w.into()))) {
            (Role::P0, Some(w)) if w.len() == k * n => {
                // P0 knows W in the clear: its packing may read how wide the values are. W is
                // packed before F overwrites it. F is uniform.
                let held = RightOperand::from_slice(k, n, &w, Width::Narrowest);
                let MatmulMask { id, b: f, .. } = self.material(|p| p.mask_owned(w, k, n))?;
                // F's buffer goes to P1 as it is (a transport within one process hands it over).
                wire::send_owned(&mut self.transport, peer, f)?;
                (id, held)
            }
            (Role::P1, None) => {
                let MatmulMask { id, .. } = self.material(|p| p.owned_mask(k, n))?;
                let f = wire::recv_owned(&mut self.transport, peer, k * n)?;
                (id, RightOperand::new(k, n, f, Width::Full))
            }
            _ => return Err(Error::ShapeMismatch),
        };
        Ok(self.owned_matrix(mask, k, n, held, None))
    }

    /// As [`Party::prepare_owned`], for a table whose rows P1 looks up ([`Party::lookup_owned`]):
    /// W, F and the dealer's B are kept as rows, so that a lookup reads only the rows of the bins
    /// its indices fall in.
    pub fn prepare_owned_table(
        &mut self,
        w: Option<impl Into<Vec<R>>>,
        k: usize,
        n: usize,
    ) -> Result<OwnedMatrix<R>, Error> {
        let peer = self.peer();
        let w = w.map(|w| Shares::from_vec(w.into()));
        if w.as_ref().map(|w| w.len()) != (self.role == Role::P0).then_some(k * n) {
            return Err(Error::ShapeMismatch);
        }
        // The rows are kept by bucket under the table's key, which P1 needs too (sent after F):
        // the key comes with B, so B is drawn on its own here.
        let (MatmulMask { id, b: mut mask, .. }, key) = self.material(|p| p.owned_table(k, n))?;
        let (held, order) = match (self.role, w) {
            (Role::P0, Some(mut w)) if mask.len() == k * n => {
                let order = lookup::TableBins::new(key.first().ok_or(Error::MaterialMismatch)?.to_u64(), k);
                // W sorted in its own buffer; F (in row order) overwrites B in place.
                order.sort_in_place(&mut w, n);
                for (r, f) in mask.chunks_exact_mut(n.max(1)).enumerate() {
                    let at = order.position(r) * n;
                    for (b, w) in f.iter_mut().zip(&w[at..at + n]) {
                        *b = w.wrapping_sub(b);
                    }
                }
                wire::send_owned(&mut self.transport, peer, mask)?;
                wire::send(&mut self.transport, peer, &[&key])?;
                (w, order)
            }
            (Role::P1, None) => {
                let mut f = wire::recv_owned(&mut self.transport, peer, k * n)?;
                let mut key = [R::ZERO];
                wire::recv(&mut self.transport, peer, &mut key)?;
                let order = lookup::TableBins::new(key[0].to_u64(), k);
                order.sort_in_place(&mut f, n);
                (f, order)
            }
            _ => return Err(Error::MaterialMismatch),
        };
        Ok(self.owned_matrix(id, k, n, RightOperand::unpacked(k, n, held), Some(Arc::new(order))))
    }

    /// The prepared owned matrix; at P1, F is told to the provider, which may fold A · F into
    /// this matrix's triples as it makes them.
    fn owned_matrix(
        &mut self,
        mask: MaskId,
        k: usize,
        n: usize,
        held: RightOperand<R>,
        order: Option<Arc<lookup::TableBins>>,
    ) -> OwnedMatrix<R> {
        let held = Arc::new(held);
        if self.role == Role::P1 {
            self.preprocessing.opened_mask(mask, held.clone());
        }
        OwnedMatrix { mask, k, n, held, order }
    }

    /// Fixed-point product X (m×k, secret) · W (owned by P0): P1 sends X1 - A once (one-way,
    /// mk elements); P0 computes (X0 + X1 - A) · W + C0 and P1 computes A · F + C1, one local
    /// GEMM each, with C = A · B from the dealer. Then truncation.
    ///
    /// With [`Truncation::Dealer`] the truncation rides on the same message: P1's share of the
    /// product, A · F + C1, needs no input, so P1 sends it masked by its share of the
    /// truncation mask together with X1 - A; P0 alone forms the opening c and sends back only
    /// msb(c), packed (n/8 bytes where the exchange of c costs 16n). P0 learns c, as it would
    /// from the exchange; P1 learns less than it did.
    pub fn matmul_owned(&mut self, x: &[R], m: usize, w: &OwnedMatrix<R>) -> Result<Shares<R>, Error> {
        if self.truncation == Truncation::Local {
            let z = self.matmul_owned_ring(x, m, w)?;
            return self.truncate(z);
        }
        if x.len() != m * w.k {
            return Err(Error::ShapeMismatch);
        }
        let f = self.fixed.frac_bits();
        let mut triple = self.material(|p| p.owned_triple(m, w.k, w.n, w.mask))?;
        let mut pairs = self.material(|p| p.trunc(m * w.n, f))?;
        if [triple.c.len(), pairs.r.len(), pairs.r_hi.len(), pairs.r_msb.len()] != [m * w.n; 4] {
            return Err(Error::MaterialMismatch);
        }
        let peer = self.peer();
        let mut z = core::mem::take(&mut triple.c);
        let words = compare::words_for_bits::<R>(m * w.n);
        let mut msb = Shares::zeros(words);
        // The material's buffers are reused: the openings are written over C (P0) and r (P1),
        // the result over r >> f.
        let mut t = core::mem::take(&mut pairs.r_hi);
        match self.role {
            Role::P0 => {
                let mut received = self.receive(m * w.k + m * w.n)?;
                let (masked, theirs) = received[..m * w.k + m * w.n].split_at_mut(m * w.k);
                if self.preprocessing.rehearsing() {
                    w.held.warm_for(m);
                } else {
                    owned_product_at_p0(masked, x, m, w, &mut z);
                }
                ring::add_assign(&mut z, theirs);
                self.received = received;
                // z + r (+ 2^(k-2)) is the opening c: public, so made in z's buffer. It goes in
                // whole words, as every opening at the ring's width ([`Segment::truncated`]).
                let c = masked_for_truncation(pairs.r.iter(), z, true, R::BITS).into_vec();
                for (i, c) in c.iter().enumerate() {
                    compare::set_bit(&mut msb, i, c.msb());
                }
                wire::send(&mut self.transport, peer, &[&msb])?;
                for ((t, &c), &r_msb) in t.iter_mut().zip(&c).zip(pairs.r_msb.iter()) {
                    *t = truncated_share(true, (f, R::BITS), c, c.msb(), *t, r_msb);
                }
            }
            Role::P1 => {
                if !self.preprocessing.rehearsing() {
                    owned_input_free_share(m, w, &triple.a, triple.absorbed, &mut z);
                }
                let masked = owned_masked_input(x, m, w, core::mem::take(&mut triple.a))?;
                // Masked by r, which is wiped: the opening's share needs no wiping of its own.
                let mine = masked_for_truncation(z.iter(), core::mem::take(&mut pairs.r), false, R::BITS).into_vec();
                wire::send(&mut self.transport, peer, &[&masked, &mine])?;
                wire::recv(&mut self.transport, peer, &mut msb)?;
                for (j, (t, &r_msb)) in t.iter_mut().zip(pairs.r_msb.iter()).enumerate() {
                    *t = truncated_share(false, (f, R::BITS), R::ZERO, compare::get_bit(&msb, j), *t, r_msb);
                }
            }
        }
        Ok(t)
    }

    /// Ring product X · W with an owned W (no truncation).
    pub fn matmul_owned_ring(&mut self, x: &[R], m: usize, w: &OwnedMatrix<R>) -> Result<Shares<R>, Error> {
        if x.len() != m * w.k {
            return Err(Error::ShapeMismatch);
        }
        let mut triple = self.material(|p| p.owned_triple(m, w.k, w.n, w.mask))?;
        let peer = self.peer();
        let mut z = core::mem::take(&mut triple.c);
        match self.role {
            Role::P0 => {
                // As in `matmul_owned`: P1's masked input (public to P0) into the kept buffer.
                let mut received = self.receive(m * w.k)?;
                if self.preprocessing.rehearsing() {
                    w.held.warm_for(m);
                } else {
                    owned_product_at_p0(&mut received[..m * w.k], x, m, w, &mut z);
                }
                self.received = received;
            }
            Role::P1 => {
                // Sent first: P0's GEMM then runs beside P1's (which needs A only if not absorbed).
                let a = if triple.absorbed { core::mem::take(&mut triple.a) } else { triple.a.clone() };
                let masked = owned_masked_input(x, m, w, a)?;
                wire::send(&mut self.transport, peer, &[&masked])?;
                if !self.preprocessing.rehearsing() {
                    owned_input_free_share(m, w, &triple.a, triple.absorbed, &mut z);
                }
            }
        }
        Ok(z)
    }
    /// The rows of P0's table W (k × n, owned) at P1's secret `indices` (`Some` at P1, `None`
    /// at P0). For a table ([`Party::prepare_owned_table`]) of [`lookup_by_bins`] rows, each
    /// index reads only its bin (see [`lookup`]: two messages, about 16·k·n
    /// multiply-accumulates a party). Else the product of P1's one-hot rows with W as
    /// [`Party::matmul_owned_ring`] makes it (no truncation: the rows are ring integers 0/1),
    /// without the `m × k` one-hot rows in memory: P1's masked input is -A with one added at
    /// each row's index, made in A's buffer; P0's share of the one-hot rows is zero.
    pub fn lookup_owned(
        &mut self,
        indices: Option<&[usize]>,
        m: usize,
        w: &OwnedMatrix<R>,
    ) -> Result<Shares<R>, Error> {
        let indices = match (self.role, indices) {
            (Role::P1, Some(idx)) if idx.len() == m && idx.iter().all(|&i| i < w.k) => idx,
            (Role::P0, None) => &[],
            _ => return Err(Error::ShapeMismatch),
        };
        // A table's lookups of enough rows go by bins (public: the table's kind and m); a
        // table's rows are kept in its order, where a one-hot product reads them too.
        let sorted: Vec<usize>;
        let indices = match &w.order {
            Some(order) if lookup_by_bins(m) => {
                let table = w.held.row_major().ok_or(Error::ShapeMismatch)?;
                return self.lookup_batched(indices, m, w, (table, order));
            }
            Some(order) => {
                sorted = indices.iter().map(|&i| order.position(i)).collect();
                &sorted[..]
            }
            None => indices,
        };
        let MatmulTriple { a, c: mut z, absorbed, .. } = self.material(|p| p.owned_triple(m, w.k, w.n, w.mask))?;
        // A is P1's alone (empty at P0).
        let a_len = if self.role == Role::P1 { m * w.k } else { 0 };
        if a.len() != a_len {
            return Err(Error::MaterialMismatch);
        }
        let peer = self.peer();
        let rehearsing = self.preprocessing.rehearsing();
        match self.role {
            Role::P0 => {
                // P1's masked rows (public to P0) arrive in the kept buffer: at BERT's vocabulary
                // they are 31 MB a query at 128 tokens, whose fresh pages cost more than the GEMM.
                let masked = self.receive(m * w.k)?;
                if rehearsing {
                    w.held.warm_for(m);
                } else {
                    w.held.gemm_acc(m, &masked[..m * w.k], &mut z);
                }
                self.received = masked;
            }
            Role::P1 => {
                let one_hot_minus = |mut masked: Shares<R>| {
                    masked.iter_mut().for_each(|x| *x = R::ZERO.wrapping_sub(x));
                    for (row, &i) in indices.iter().enumerate() {
                        let at = &mut masked[row * w.k + i];
                        *at = at.wrapping_add(&R::ONE);
                    }
                    masked
                };
                if absorbed || rehearsing {
                    wire::send(&mut self.transport, peer, &[&one_hot_minus(a)])?;
                } else {
                    // Sent first: P0's GEMM then runs beside P1's.
                    wire::send(&mut self.transport, peer, &[&one_hot_minus(Shares::from_vec(a.to_vec()))])?;
                    owned_input_free_share(m, w, &a, false, &mut z);
                }
            }
        }
        Ok(z)
    }
}

/// P0's share of an owned-weight product X · W: z += (X0 + (X1 - A)) · W, from P1's `masked`
/// X1 - A (overwritten).
fn owned_product_at_p0<R: Ring>(masked: &mut [R], x: &[R], m: usize, w: &OwnedMatrix<R>, z: &mut [R]) {
    ring::add_assign(masked, x);
    w.held.gemm_acc(m, masked, z);
}

/// P1's masked input of an owned-weight product X · W with its triple's A: X1 - A, for P0,
/// made in A's buffer (sent to P0, so no longer wiped).
fn owned_masked_input<R: Ring>(x: &[R], m: usize, w: &OwnedMatrix<R>, mut a: Shares<R>) -> Result<Vec<R>, Error> {
    if a.len() != m * w.k {
        return Err(Error::MaterialMismatch);
    }
    for (a, x) in a.iter_mut().zip(x) {
        *a = x.wrapping_sub(a);
    }
    Ok(a.into_vec())
}

/// P1's input-free share of an owned-weight product: z += A · F, unless the offline phase
/// absorbed it into C.
fn owned_input_free_share<R: Ring>(m: usize, w: &OwnedMatrix<R>, a: &[R], absorbed: bool, z: &mut [R]) {
    if !absorbed {
        w.held.gemm_acc(m, a, z);
    }
}

/// Moves the input-free part of a matmul triple's product into its C, in the offline phase:
/// C += A · F, where F is the opened mask of the prepared (or, at P1, owned) matrix the triple
/// belongs to. The online product then runs one GEMM per party instead of two.
pub fn absorb<R: Ring>(triple: &mut MatmulTriple<R>, f: &RightOperand<R>) -> Result<(), Error> {
    if triple.absorbed || triple.a.is_empty() {
        return Ok(());
    }
    let (k, n) = (f.rows(), f.cols());
    if triple.a.len() != triple.m * k || triple.c.len() != triple.m * n {
        return Err(Error::MaterialMismatch);
    }
    f.gemm_acc(triple.m, &triple.a, &mut triple.c);
    triple.absorbed = true;
    Ok(())
}

/// Cuts a flat stream of values into sharings of the given lengths (the inverse of batching
/// several operations into one opening).
pub(crate) fn split_like<R: Ring>(
    mut flat: impl Iterator<Item = R>,
    lens: impl Iterator<Item = usize>,
) -> Vec<Shares<R>> {
    lens.map(|len| Shares::from_vec(flat.by_ref().take(len).collect())).collect()
}

/// Cuts one sharing into consecutive sharings of the given lengths (which sum to its length):
/// the first keeps the buffer (and wipes the others' old copies with it when dropped).
pub(crate) fn split_at_lens<R: Ring>(mut flat: Shares<R>, lens: &[usize]) -> Vec<Shares<R>> {
    let mut parts: Vec<Shares<R>> = Vec::with_capacity(lens.len());
    let mut end = flat.len();
    for &len in lens.iter().skip(1).rev() {
        end -= len;
        parts.push(flat.split_off(end));
    }
    parts.push(flat);
    parts.reverse();
    parts
}

/// This party's share of the truncation opening c = x + 2^(m-2) + r of the values `x` (m =
/// `width`, the ring's k bits but for narrow comparisons), written over its share of r.
pub(crate) fn masked_for_truncation<'a, R: Ring>(
    x: impl Iterator<Item = &'a R>,
    mut r: Shares<R>,
    p0: bool,
    width: u32,
) -> Shares<R> {
    let lift = truncation_lift::<R>(p0, width);
    for (r, x) in r.iter_mut().zip(x) {
        *r = x.wrapping_add(r).wrapping_add(&lift);
    }
    r
}

/// A run of `len` values of one opening ([`Party::open_in_widths`]), opened mod 2^`width`
/// without their `skip` low bits: each party sends bits `skip` to `width` - 1 of its share
/// ([`Segment::pack`]), and the opening is the sum of those parts, shifted back up (its low
/// bits zero).
///
/// A truncation's opening c = x + 2^(m-2) + r is read only as c >> s and its top bit, and a
/// party's share of c is masked by its uniform share of r: its high part alone tells the peer
/// nothing more. P0 rounds its part to nearest (adds 2^(s-1) first) and P1 floors its, so that
/// the parts' sum is (c + 2^(s-1)) >> s less the carry of the two low parts, 0 or 1, which is 1
/// with the probability that balances the rounding: the value x >> s read off it lands within
/// 1.5 units of x / 2^s (a dealer truncation's borrow, and this carry), without a bias. Its wrap
/// (read off the top bit at width m) stays right for |x| <= 2^(m-2) - 2^s: the sum could turn
/// its top bit or wrap below 0 only where x + 2^(m-2) + 2^(s-1) + (r mod 2^m) is within 2^s of
/// 2^(m-1) or 2^m, which that bound rules out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Values in the run.
    pub len: usize,
    /// Bits each value is opened on (mod 2^width), at most the ring's.
    pub width: u32,
    /// Low bits not sent (the truncation's shift, or 0).
    pub skip: u32,
}

impl Segment {
    /// The opening of `len` truncated values at `width` bits, shifted by `shift`: its low bits
    /// stay home where the run is packed anyway (narrower than the ring). A run at the ring's
    /// width goes in whole words: there copying words costs less CPU than packing parts of
    /// k - s bits would save on a local link (the scalar packing, about 5 cycles a value each
    /// way, took 6 % of a BERT-base query's online samples with owner weights).
    pub(crate) fn truncated<R: Ring>(len: usize, width: u32, shift: u32) -> Self {
        Self { len, width, skip: if width < R::BITS { shift } else { 0 } }
    }

    /// Bits a value of this run takes on the wire.
    pub(crate) fn sent_bits<R: Ring>(&self) -> u32 {
        self.width.min(R::BITS) - self.skip
    }

    /// Ring words this run takes on the wire, packed ([`wire::pack_low_bits`]).
    pub(crate) fn words<R: Ring>(&self) -> usize {
        wire::packed_words::<R>(self.len, self.sent_bits::<R>())
    }

    /// This party's part of a share v: bits `skip` to `width` - 1, P0's rounded to nearest and
    /// P1's floored, so that the parts' sum is c >> skip rounded either way without a bias.
    #[inline(always)]
    fn part<R: Ring>(&self, v: R, p0: bool) -> R {
        if self.skip == 0 {
            return v;
        }
        let half = if p0 { R::ONE.shl(self.skip - 1) } else { R::ZERO };
        ring::low_bits(v.wrapping_add(&half), self.width).shr_logical(self.skip)
    }

    /// This party's parts of its `shares` of the run, packed into `out` ([`Segment::words`]).
    pub(crate) fn pack<R: Ring>(&self, shares: &[R], p0: bool, out: &mut [R]) {
        wire::pack_parts(shares, self.sent_bits::<R>(), out, |v| self.part(v, p0));
    }

    /// The opening: the peer's `packed` parts added to this party's parts of its shares `mine`,
    /// shifted back up, written over `mine` (mod 2^width, the low `skip` bits zero).
    pub(crate) fn open<R: Ring>(&self, packed: &[R], mine: &mut [R], p0: bool) -> Result<(), Error> {
        let skip = self.skip;
        wire::add_packed_parts(packed, self.sent_bits::<R>(), mine, |v| self.part(v, p0), |sum| sum.shl(skip))
    }
}

/// This party's part of the 2^(m-2) a truncation opening of `width` bits adds to x + r (which
/// keeps x + 2^(m-2) non-negative): P0 adds it, P1 nothing.
pub(crate) fn truncation_lift<R: Ring>(p0: bool, width: u32) -> R {
    if p0 { R::ONE.shl(width - 2) } else { R::ZERO }
}

/// The public part of x >> f read off a truncation opening c of `width` bits (c = x +
/// 2^(m-2) + r mod 2^m; m is the ring's k bits but for narrow comparisons): c >> f -
/// 2^(m-2-f). With [`truncation_wrap`], x >> f = public + wrap·msb(ρ) - (ρ >> f) for ρ = r mod
/// 2^m, within one unit (1.5 when c's low bits were not sent, [`Segment`]).
pub(crate) fn truncation_public<R: Ring>(c: R, f: u32, width: u32) -> R {
    c.shr_logical(f).wrapping_sub(&R::ONE.shl(width - 2 - f))
}

/// The public factor of msb(ρ) (bit m - 1) in x >> f read off a truncation opening of `width`
/// bits whose top bit is `c_msb`: (1 - msb c)·2^(m-f), which is 2^k, nothing in the ring, for
/// f = 0 at full width.
pub(crate) fn truncation_wrap<R: Ring>(c_msb: R, f: u32, width: u32) -> R {
    if width - f >= R::BITS { R::ZERO } else { R::ONE.wrapping_sub(&c_msb).shl(width - f) }
}

/// One party's share of x >> f after a truncation opening c of `width` bits: msb(ρ)·(1 - msb
/// c)·2^(m-f) - (ρ >> f), plus the public c >> f - 2^(m-2-f) at P0 (only P0 reads `c`; P1
/// needs its top bit).
pub(crate) fn truncated_share<R: Ring>(p0: bool, (f, width): (u32, u32), c: R, c_msb: R, r_hi: R, r_msb: R) -> R {
    let v = r_msb.wrapping_mul(&truncation_wrap(c_msb, f, width)).wrapping_sub(&r_hi);
    if p0 { v.wrapping_add(&truncation_public(c, f, width)) } else { v }
}

/// Local truncation of one party's share by `f` bits (SecureML): P0 shifts its share, P1 shifts
/// the negation of its share and negates back, so that both round the same way.
pub fn truncate_local<R: Ring>(role: Role, share: &mut [R], f: u32) {
    match role {
        Role::P0 => {
            for v in share.iter_mut() {
                *v = v.shr_arith(f);
            }
        }
        Role::P1 => {
            for v in share.iter_mut() {
                *v = v.wrapping_neg().shr_arith(f).wrapping_neg();
            }
        }
    }
}

impl<R: Ring, T: Transport, P: Preprocessing<R>> core::fmt::Debug for Party<R, T, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Party")
            .field("role", &self.role)
            .field("fixed", &self.fixed)
            .field("truncation", &self.truncation)
            .finish_non_exhaustive()
    }
}
