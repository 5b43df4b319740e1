//! The messages each protocol exchanges, as a model both parties' meters can be predicted from.
//!
//! Every function here mirrors the communication of one [`Party`](super::Party) method exactly
//! (who sends how many ring elements, in which order); the simulated setting drives a
//! [`CommModel`] with them, and the tests hold the prediction to the real counts.

use crate::preprocessing::deal::{below_digits, words_for_bits};
use crate::protocol::Truncation;
use crate::ring::Ring;
use crate::transport::{CommStats, FlightCounter, Role};

/// Both parties' predicted meters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommModel {
    parties: [FlightCounter; 2],
}

impl CommModel {
    /// Both parties send `elements` ring elements of `R` to each other, then receive.
    pub fn exchange<R: Ring>(&mut self, elements: usize) {
        let bytes = (elements * R::BYTES) as u64;
        self.parties.iter_mut().for_each(|p| p.sent(bytes));
        self.parties.iter_mut().for_each(|p| p.received(bytes));
    }

    /// `from` sends `elements` ring elements to the other party.
    pub fn one_way<R: Ring>(&mut self, from: Role, elements: usize) {
        let bytes = (elements * R::BYTES) as u64;
        self.parties[from.index()].sent(bytes);
        self.parties[from.peer().index()].received(bytes);
    }

    /// The predicted counts of `role`.
    pub fn stats(&self, role: Role) -> CommStats {
        self.parties[role.index()].stats()
    }

    /// The larger of the two parties' rounds.
    pub fn rounds(&self) -> u64 {
        self.stats(Role::P0).rounds.max(self.stats(Role::P1).rounds)
    }
}

/// [`Party::open`](super::Party::open) and friends: one exchange of `n` elements.
pub fn open<R: Ring>(m: &mut CommModel, n: usize) {
    m.exchange::<R>(n);
}

/// Truncation of `n` elements by `bits` (a shift by 0 is no step at all).
pub fn truncate<R: Ring>(m: &mut CommModel, n: usize, bits: u32, method: Truncation) {
    if method == Truncation::Dealer && bits > 0 {
        m.exchange::<R>(n);
    }
}

/// Truncation of `n` elements by `bits`, followed by a square with a public offset
/// ([`Party::truncate_square_many`](super::Party::truncate_square_many); before the square's
/// own truncation): with dealer pairs the square is local.
pub fn truncate_square<R: Ring>(m: &mut CommModel, n: usize, bits: u32, method: Truncation) {
    if method == Truncation::Dealer && bits <= R::BITS / 2 {
        m.exchange::<R>(n);
    } else {
        truncate::<R>(m, n, bits, method);
        square::<R>(m, n);
    }
}

/// Beaver products of `total` elements (before truncation).
pub fn mul<R: Ring>(m: &mut CommModel, total: usize) {
    m.exchange::<R>(2 * total);
}

/// Squares of `n` elements (before truncation).
pub fn square<R: Ring>(m: &mut CommModel, n: usize) {
    m.exchange::<R>(n);
}

/// Secret matrix products opening `Σ (mk + kn)` elements (before truncation).
pub fn matmul<R: Ring>(m: &mut CommModel, opened: usize) {
    m.exchange::<R>(opened);
}

/// Broadcast products opening `Σ (rows·len + short side)` elements (before truncation).
pub fn broadcast<R: Ring>(m: &mut CommModel, opened: usize) {
    m.exchange::<R>(opened);
}

/// Preparing secret-shared matrices of `Σ kn` elements (W - B opened).
pub fn prepare_shared<R: Ring>(m: &mut CommModel, elements: usize) {
    m.exchange::<R>(elements);
}

/// Preparing P0's own matrix of `kn` elements (F = W - B sent to P1).
pub fn prepare_owned<R: Ring>(m: &mut CommModel, elements: usize) {
    m.one_way::<R>(Role::P0, elements);
}

/// [`Party::prepare_owned_table`](super::Party::prepare_owned_table) of `elements`: F, then the
/// table's key (one element), both from P0.
pub fn prepare_owned_table<R: Ring>(m: &mut CommModel, elements: usize) {
    m.one_way::<R>(Role::P0, elements);
    m.one_way::<R>(Role::P0, 1);
}

/// A product X (m×k) · W with a prepared shared W (before truncation).
pub fn matmul_prepared<R: Ring>(m: &mut CommModel, rows: usize, k: usize) {
    m.exchange::<R>(rows * k);
}

/// A lookup of `m` rows of P0's table (`k × n`) at P1's indices
/// ([`Party::lookup_owned`](super::Party::lookup_owned)): P1's masked one-hot rows one way;
/// for a table by bins ([`Party::prepare_owned_table`](super::Party::prepare_owned_table),
/// [`lookup_by_bins`](super::lookup_by_bins)) P1's slots and route, then P0's share of the
/// slots' rows.
pub fn lookup_owned<R: Ring>(m: &mut CommModel, rows: usize, (k, n): (usize, usize), table: bool) {
    if table && super::lookup_by_bins(rows) {
        let slots = super::lookup_bins(rows) * super::LOOKUP_SLOTS;
        m.one_way::<R>(Role::P1, super::LOOKUP_SLOTS * k + rows * slots);
        m.one_way::<R>(Role::P0, slots * n);
    } else {
        m.one_way::<R>(Role::P1, rows * k);
    }
}

/// A product X (m×k) · W with P0's own W: P1's masked share, one way (before truncation).
pub fn matmul_owned<R: Ring>(m: &mut CommModel, rows: usize, k: usize) {
    m.one_way::<R>(Role::P1, rows * k);
}

/// A fixed-point product X (m×k) · W with P0's own W, truncated
/// ([`Party::matmul_owned`](super::Party::matmul_owned)): with dealer pairs, P1's masked share
/// and its masked share of the product go one way together, and P0 answers with the opening's
/// most significant bits, packed.
pub fn matmul_owned_truncated<R: Ring>(m: &mut CommModel, rows: usize, k: usize, n: usize, method: Truncation) {
    match method {
        Truncation::Dealer => {
            m.one_way::<R>(Role::P1, rows * k + rows * n);
            m.one_way::<R>(Role::P0, words_for_bits::<R>(rows * n));
        }
        Truncation::Local => matmul_owned::<R>(m, rows, k),
    }
}

/// The maximum of rows of length `len`: per level, one comparison of each pair's difference
/// with its product by the bit, at the comparisons' `width`
/// ([`Party::max_rows`](super::Party::max_rows)).
pub fn max_rows<R: Ring>(m: &mut CommModel, rows: usize, len: usize, width: u32) {
    let mut cols = len;
    while cols > 1 {
        below::<R>(m, rows * (cols / 2), 1, width, 0);
        cols = cols.div_ceil(2);
    }
}

/// Comparisons of `n` values with `bounds` bounds each at `width` bits, their digits skipping
/// `skip` low bits ([`Party::below`](super::Party::below),
/// [`Party::below_times_square`](super::Party::below_times_square)): the masked opening (`width`
/// bits a value, less the skipped ones below the ring's width, packed), the AND levels down to
/// two nodes (the lowest node's eq is never computed), and the last level fused with the
/// conversion (three bits per comparison).
pub fn below<R: Ring>(m: &mut CommModel, n: usize, bounds: usize, width: u32, skip: u32) {
    let sent = crate::protocol::Segment::truncated::<R>(n, width.min(R::BITS), skip).sent_bits::<R>();
    m.exchange::<R>(crate::wire::packed_words::<R>(n, sent));
    let words = words_for_bits::<R>(n * bounds);
    let mut nodes = below_digits(bounds, width.min(R::BITS).saturating_sub(skip));
    while nodes > 2 {
        let gates = nodes - 1;
        m.exchange::<R>(2 * gates * words);
        nodes /= 2;
    }
    m.exchange::<R>(3 * words);
}

/// Fused products ([`Party::mul_fused`](super::Party::mul_fused)) sending `opened` ring words in
/// all (x and y of each product, x alone for a square, a narrow square packed:
/// [`FusedOperands::opened_words`]): one exchange.
///
/// [`FusedOperands::opened_words`]: super::FusedOperands::opened_words
pub fn fused<R: Ring>(m: &mut CommModel, opened: usize) {
    m.exchange::<R>(opened);
}
