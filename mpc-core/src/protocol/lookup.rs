//! Rows of P0's table at P1's secret indices, batched: the table's rows are hashed into bins and
//! each index reads only its bin, so that a lookup of m rows costs about
//! [`LOOKUP_SLOTS`] · k · n multiply-accumulates per party (and m² · [`LOOKUP_SLOTS`] · n for
//! routing the rows to their positions) instead of the m · k · n of a one-hot product.
//!
//! A key (drawn with the table's mask from P0's stream, sent to P1 with F = W - B, independent of
//! any indices) hashes the table's k rows into [`TABLE_BUCKETS`] buckets, and P0, P1 and the
//! dealer keep W, F and B in bucket order (`TableBins`). A lookup of m rows cuts the buckets
//! into [`lookup_bins`] bins (at least m), each a block of rows. P1 places each distinct index
//! in a free slot of its bin ([`LOOKUP_SLOTS`] a bin) and sends, per slot, its one-hot over the
//! bin's rows masked by the dealer's a; P0 multiplies that by its rows of the bin, P1 its a by
//! the rows of F, and the dealer's C = a · B completes the owned product of each slot
//! ([`Party::matmul_owned`]). The slots' rows then go to the m positions through P1's one-hot
//! route: P0 sends its share less its random R0 (P1 now holds the slots' rows less R0), and the
//! route's product with R0, (P - A') · R0 at P0 plus the dealer's A' · R0, needs no further
//! message. Two messages, one each way; P0 sees uniformly masked values, P1 a uniformly masked
//! share.
//!
//! The bins are uniform for any indices chosen without the key, so a bin gets more than
//! [`LOOKUP_SLOTS`] of m distinct indices with probability at most m / 17!, below 2^-36 for the
//! m ≤ [`TABLE_BUCKETS`] looked up by bins ([`lookup_by_bins`]): the lookup then fails
//! ([`Error::TooLarge`]) rather than reveal anything.

use alloc::vec::Vec;

use super::{OwnedMatrix, Party};

use crate::error::Error;
use crate::preprocessing::{Preprocessing, PreprocessingExt};
use crate::ring::Ring;
use crate::share::Shares;
use crate::transport::{Role, Transport};
use crate::wire;

/// Slots a bin has: each reads one row of its bin.
pub const LOOKUP_SLOTS: usize = 16;

/// Lookups of fewer rows take the one-hot product: at m rows it costs m · k · n, the bins
/// [`LOOKUP_SLOTS`] · k · n plus the route.
pub const BATCHED_LOOKUP_FROM: usize = 32;

/// Whether a table's lookup of `m` rows goes by bins: from [`BATCHED_LOOKUP_FROM`] rows up to
/// one bin a row ([`TABLE_BUCKETS`]; beyond, a bin's load would pass its slots too often).
pub const fn lookup_by_bins(m: usize) -> bool {
    m >= BATCHED_LOOKUP_FROM && m <= TABLE_BUCKETS
}

/// Buckets a table's rows are sorted into when it is prepared; a lookup's bins are runs of
/// neighbouring buckets.
pub const TABLE_BUCKETS: usize = 4096;

/// Bins of a lookup of `m` rows: the power of two from m (at least one bin a row: at most m
/// distinct indices, under one a bin on average), at most [`TABLE_BUCKETS`].
pub const fn lookup_bins(m: usize) -> usize {
    match m.checked_next_power_of_two() {
        Some(bins) if bins <= TABLE_BUCKETS => bins,
        _ => TABLE_BUCKETS,
    }
}

/// A keyed 64-bit mix of `row` (SplitMix64's finaliser): its top bits pick the bucket, and
/// the bin of any power-of-two count of bins (a run of buckets).
fn mix(key: u64, row: usize) -> u64 {
    let mut z = key ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The order of a table's rows by bucket under a key, fixed when the table is prepared: P0's
/// W, P1's F and the dealer's B are all kept in it, so that every bin of every lookup is a
/// contiguous block of rows.
#[derive(Debug)]
pub(crate) struct TableBins {
    key: u64,
    /// Rows, bucket after bucket (each bucket's in increasing order).
    order: Vec<usize>,
    /// Where each row is in `order`.
    position: Vec<usize>,
    /// Where each bucket starts in `order` ([`TABLE_BUCKETS`] + 1 offsets).
    starts: Vec<usize>,
}

impl TableBins {
    /// The order of `k` rows under `key` (a counting sort by bucket: stable).
    pub(crate) fn new(key: u64, k: usize) -> Self {
        let bucket = |row: usize| (mix(key, row) >> (64 - TABLE_BUCKETS.trailing_zeros())) as usize;
        let mut starts = alloc::vec![0usize; TABLE_BUCKETS + 1];
        for row in 0..k {
            starts[bucket(row) + 1] += 1;
        }
        for b in 0..TABLE_BUCKETS {
            starts[b + 1] += starts[b];
        }
        let (mut next, mut order, mut position) = (starts.clone(), alloc::vec![0usize; k], alloc::vec![0usize; k]);
        for row in 0..k {
            let at = &mut next[bucket(row)];
            order[*at] = row;
            position[row] = *at;
            *at += 1;
        }
        Self { key, order, position, starts }
    }

    /// Puts `table`'s rows (k × n, row-major) in this order, in place: row r moves to
    /// [`TableBins::position`] r, one cycle of the permutation at a time through a buffer of one
    /// row (a sorted copy would be a second table of fresh pages).
    pub(crate) fn sort_in_place<R: Ring>(&self, table: &mut [R], n: usize) {
        let k = self.rows();
        assert_eq!(table.len(), k * n, "a table of {k} rows of {n}");
        let mut placed = alloc::vec![false; k];
        let mut carried = Shares::zeros(n);
        for start in 0..k {
            if placed[start] {
                continue;
            }
            // Carry row `start` to its place, the row found there to its own, and so on until
            // the cycle closes at `start`.
            carried.copy_from_slice(&table[start * n..(start + 1) * n]);
            let mut row = start;
            loop {
                let to = self.position[row];
                table[to * n..(to + 1) * n].swap_with_slice(&mut carried);
                placed[to] = true;
                if to == start {
                    break;
                }
                row = to;
            }
        }
    }

    /// Rows of the table.
    fn rows(&self) -> usize {
        self.order.len()
    }

    /// Where `row` is in the sorted table (a one-hot product's index into it).
    pub(crate) fn position(&self, row: usize) -> usize {
        self.position[row]
    }

    /// Bin b of `bins` (a power of two up to [`TABLE_BUCKETS`]): its rows' range in the order.
    fn bin(&self, b: usize, bins: usize) -> core::ops::Range<usize> {
        let per_bin = TABLE_BUCKETS / bins;
        self.starts[b * per_bin]..self.starts[(b + 1) * per_bin]
    }

    /// The bin of `row` among `bins` (a power of two up to [`TABLE_BUCKETS`]).
    pub(crate) fn bin_of(&self, row: usize, bins: usize) -> usize {
        if bins == 1 { 0 } else { (mix(self.key, row) >> (64 - bins.trailing_zeros())) as usize }
    }

    /// The bin of `row` among `bins`, and its place among the bin's rows.
    fn place(&self, row: usize, bins: usize) -> (usize, usize) {
        let b = self.bin_of(row, bins);
        (b, self.position[row] - self.bin(b, bins).start)
    }

    /// Where slot s of bin b starts among the slots' weights: the bins in order, each
    /// [`LOOKUP_SLOTS`] runs over its rows.
    fn slot_at(&self, b: usize, bins: usize, s: usize) -> usize {
        let rows = self.bin(b, bins);
        LOOKUP_SLOTS * rows.start + s * rows.len()
    }
}

/// `out` (slots × n: slot s of bin b at row b · [`LOOKUP_SLOTS`] + s) += each slot's `coefs`
/// times its bin's rows of `table` (k × n, sorted by [`TableBins`]): per bin one product of its
/// [`LOOKUP_SLOTS`] × L weights (slot after slot, the bins in order) with its L rows.
pub(crate) fn bin_products<R: Ring>(
    table: &[R],
    n: usize,
    (order, bins): (&TableBins, usize),
    coefs: &[R],
    out: &mut [R],
) -> Result<(), Error> {
    let k = order.rows();
    if table.len() != k * n || coefs.len() != LOOKUP_SLOTS * k || out.len() != bins * LOOKUP_SLOTS * n {
        return Err(Error::MaterialMismatch);
    }
    for (b, slots) in out.chunks_exact_mut(LOOKUP_SLOTS * n).enumerate() {
        let rows = order.bin(b, bins);
        let weights = &coefs[LOOKUP_SLOTS * rows.start..LOOKUP_SLOTS * rows.end];
        crate::gemm::gemm_acc(LOOKUP_SLOTS, rows.len(), n, weights, &table[rows.start * n..rows.end * n], slots);
    }
    Ok(())
}

/// Places P1's rows in slots: each distinct row takes the next free slot of its bin, and every
/// position gets its row's slot (`slot_of`, bin b's slots from b · [`LOOKUP_SLOTS`]). Returns,
/// per position, 1 where its row is seen for the first time (0 for a repeat).
///
/// The rows are P1's secret and P0 sees when P1's message leaves: each position is compared
/// with every earlier one, with no early exit and no branch on the outcome, so the time taken
/// depends on the number of positions only, not on how many rows repeat. A bin beyond its
/// slots (below 2^-36: see the module) is refused after the pass, before anything is sent.
fn place_in_slots(indices: &[usize], order: &TableBins, bins: usize, slot_of: &mut [usize]) -> Result<Vec<u64>, Error> {
    let mut used = alloc::vec![0usize; bins];
    let mut fresh = alloc::vec![0u64; indices.len()];
    let mut overflow = 0usize;
    for (i, &row) in indices.iter().enumerate() {
        // All ones where an earlier position holds the same row, and that position's slot
        // (every such position has the same one).
        let (mut seen, mut earlier) = (0usize, 0usize);
        for (&other, &slot) in indices[..i].iter().zip(&slot_of[..i]) {
            let same = 0usize.wrapping_sub(usize::from(other == row));
            seen |= same;
            earlier |= same & slot;
        }
        let b = order.bin_of(row, bins);
        let new = !seen & 1;
        overflow |= new & usize::from(used[b] >= LOOKUP_SLOTS);
        let next = b * LOOKUP_SLOTS + used[b].min(LOOKUP_SLOTS - 1);
        slot_of[i] = (seen & earlier) | (!seen & next);
        used[b] += new;
        fresh[i] = new as u64;
    }
    if overflow != 0 {
        return Err(Error::TooLarge);
    }
    Ok(fresh)
}

impl<R: Ring, T: Transport, P: Preprocessing<R>> Party<R, T, P> {
    /// [`Party::lookup_owned`] by bins (see the [module](self)), for a table prepared by
    /// [`Party::prepare_owned_table`] (`table`: its rows in `order`).
    pub(super) fn lookup_batched(
        &mut self,
        indices: &[usize],
        m: usize,
        w: &OwnedMatrix<R>,
        (table, order): (&[R], &TableBins),
    ) -> Result<Shares<R>, Error> {
        let (k, n) = (w.k, w.n);
        let bins = lookup_bins(m);
        let slots = bins * LOOKUP_SLOTS;
        let mut material = self.material(|p| p.owned_lookup(m, k, n, w.mask))?;
        let p1 = self.role == Role::P1;
        let (a_len, route_len) = if p1 { (LOOKUP_SLOTS * k, m * slots) } else { (0, 0) };
        if (material.a.len(), material.route.len(), material.r0.len())
            != (a_len, route_len, if p1 { 0 } else { slots * n })
            || (material.c.len(), material.c_route.len()) != (slots * n, m * n)
            || order.rows() != k
        {
            return Err(Error::MaterialMismatch);
        }
        let peer = self.peer();
        let rehearsing = self.preprocessing.rehearsing();
        let out = match self.role {
            Role::P1 => {
                // The slots' one-hots and the route, masked: -a and -A' with a one at each
                // slot's row (in its bin) and at each position's slot.
                let mut masked = Shares::from_vec(material.a.iter().map(|v| R::ZERO.wrapping_sub(v)).collect());
                let mut route = core::mem::take(&mut material.route);
                route.iter_mut().for_each(|v| *v = R::ZERO.wrapping_sub(v));
                let mut slot_of = alloc::vec![0usize; m];
                // A rehearsal's indices are stand-ins: no slot is read.
                if !rehearsing {
                    let fresh = place_in_slots(indices, order, bins, &mut slot_of)?;
                    for ((i, &row), (&slot, &fresh)) in indices.iter().enumerate().zip(slot_of.iter().zip(&fresh)) {
                        // The one-hot of each slot's row, once: at the row's first position.
                        let (b, at) = order.place(row, bins);
                        let one_hot = order.slot_at(b, bins, slot - b * LOOKUP_SLOTS) + at;
                        masked[one_hot] = masked[one_hot].wrapping_add(&R::from_u64(fresh));
                        route[i * slots + slot] = route[i * slots + slot].wrapping_add(&R::ONE);
                    }
                }
                wire::send(&mut self.transport, peer, &[&masked, &route])?;
                // The slots' rows less R0: a · F plus its share of C, plus P0's share less R0.
                let mut z = core::mem::take(&mut material.c);
                if !rehearsing {
                    bin_products(table, n, (order, bins), &material.a, &mut z)?;
                }
                let theirs = self.receive(slots * n)?;
                crate::ring::add_assign(&mut z, &theirs[..slots * n]);
                self.received = theirs;
                let mut rows = core::mem::take(&mut material.c_route);
                for (row, &slot) in rows.chunks_exact_mut(n).zip(&slot_of) {
                    crate::ring::add_assign(row, &z[slot * n..(slot + 1) * n]);
                }
                self.recycle([z, masked, route]);
                rows
            }
            Role::P0 => {
                let message = self.receive(LOOKUP_SLOTS * k + m * slots)?;
                let (masked, route) = message[..LOOKUP_SLOTS * k + m * slots].split_at(LOOKUP_SLOTS * k);
                // Its share of the slots' rows, sent less R0 (first: P1's work then runs beside
                // the route's product here).
                let mut z = core::mem::take(&mut material.c);
                if !rehearsing {
                    bin_products(table, n, (order, bins), masked, &mut z)?;
                }
                crate::ring::sub_assign(&mut z, &material.r0);
                wire::send(&mut self.transport, peer, &[&z])?;
                // (P - A') · R0, plus its share of A' · R0.
                let mut rows = core::mem::take(&mut material.c_route);
                if !rehearsing {
                    crate::gemm::gemm_acc(m, slots, n, route, &material.r0, &mut rows);
                }
                self.received = message;
                self.recycle([z]);
                rows
            }
        };
        self.recycle(material.into_shares());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_sorted_in_place_has_each_row_at_its_position() {
        for (key, k, n) in [(0x5EED, 5000, 3), (7, 1, 4), (99, 257, 1), (3, 40, 0)] {
            let order = TableBins::new(key, k);
            let table: Vec<u64> = (0..(k * n) as u64).map(|v| v.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
            let mut sorted = table.clone();
            order.sort_in_place(&mut sorted, n);
            for r in 0..k {
                let at = order.position(r);
                assert_eq!(sorted[at * n..(at + 1) * n], table[r * n..(r + 1) * n], "row {r} of {k}");
            }
            // The rows of a bucket stay in increasing order (the counting sort is stable).
            for bucket in order.starts.windows(2) {
                assert!(order.order[bucket[0]..bucket[1]].windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn rows_take_their_bins_slots_in_order_of_first_sight() {
        let order = TableBins::new(0x5EED, 5000);
        // Repeats near and far, a row at every position, and a short list.
        let lists: [Vec<usize>; 3] = [
            (0..300).map(|i| (i * 7919) % 97).collect(),
            (0..64).map(|i| i * 31 + 5).collect(),
            alloc::vec![4, 4, 9, 4, 9],
        ];
        for indices in &lists {
            let bins = lookup_bins(indices.len().max(32));
            let mut slot_of = alloc::vec![0; indices.len()];
            let fresh = place_in_slots(indices, &order, bins, &mut slot_of).expect("within the slots");
            // The reference: a scan of the rows placed so far.
            let mut placed: Vec<(usize, usize)> = Vec::new();
            let mut used = alloc::vec![0; bins];
            for (i, &row) in indices.iter().enumerate() {
                let want = match placed.iter().find(|(r, _)| *r == row) {
                    Some(&(_, slot)) => slot,
                    None => {
                        let b = order.bin_of(row, bins);
                        let slot = b * LOOKUP_SLOTS + used[b];
                        used[b] += 1;
                        placed.push((row, slot));
                        slot
                    }
                };
                assert_eq!(slot_of[i], want, "position {i}");
                assert_eq!(fresh[i], u64::from(!indices[..i].contains(&row)), "position {i} is a first sight");
            }
        }
        // Seventeen rows of one bin: refused.
        let bins = 32;
        let crowded: Vec<usize> = (0..5000).filter(|&r| order.bin_of(r, bins) == 3).take(LOOKUP_SLOTS + 1).collect();
        let mut slot_of = alloc::vec![0; crowded.len()];
        assert!(matches!(place_in_slots(&crowded, &order, bins, &mut slot_of), Err(Error::TooLarge)));
        assert!(place_in_slots(&crowded[..LOOKUP_SLOTS], &order, bins, &mut slot_of).is_ok(), "sixteen fit");
    }

    #[test]
    fn a_tables_order_holds_every_row_once_and_every_bin_as_a_block() {
        for (key, k) in [(7u64, 1usize), (1, 5), (0xDEAD_BEEF, 3000), (42, 30_522)] {
            let order = TableBins::new(key, k);
            let mut seen = alloc::vec![false; k];
            for (at, &row) in order.order.iter().enumerate() {
                assert!(!seen[row], "row {row} twice");
                seen[row] = true;
                assert_eq!(order.position(row), at);
            }
            assert!(seen.iter().all(|&s| s));
            for bins in [1, 2, 32, 128, TABLE_BUCKETS] {
                // The bins cut the order into consecutive blocks, and each row's place is in its own.
                let mut end = 0;
                for b in 0..bins {
                    let range = order.bin(b, bins);
                    assert_eq!(range.start, end, "bins of {bins} are consecutive");
                    end = range.end;
                }
                assert_eq!(end, k);
                for row in (0..k).step_by(k / 50 + 1) {
                    let (b, at) = order.place(row, bins);
                    assert_eq!(order.order[order.bin(b, bins).start + at], row, "{bins} bins, row {row}");
                }
            }
        }
        // The key moves the rows: another key, another order.
        assert_ne!(TableBins::new(1, 1000).order, TableBins::new(2, 1000).order);
    }

    #[test]
    fn bin_products_are_each_slots_weights_times_its_bins_rows() {
        let (k, n, bins) = (300, 3, 8);
        let order = TableBins::new(99, k);
        let table: Vec<u64> = (0..k * n).map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let coefs: Vec<u64> = (0..LOOKUP_SLOTS * k).map(|i| (i as u64 * 7 + 3) % 11).collect();
        let mut out = alloc::vec![1u64; bins * LOOKUP_SLOTS * n];
        bin_products(&table, n, (&order, bins), &coefs, &mut out).unwrap();
        for b in 0..bins {
            let rows = order.bin(b, bins);
            for s in 0..LOOKUP_SLOTS {
                for j in 0..n {
                    let want = rows.clone().enumerate().fold(1u64, |acc, (l, at)| {
                        acc.wrapping_add(coefs[order.slot_at(b, bins, s) + l].wrapping_mul(table[at * n + j]))
                    });
                    assert_eq!(out[(b * LOOKUP_SLOTS + s) * n + j], want, "bin {b}, slot {s}, column {j}");
                }
            }
        }
        let mut short = alloc::vec![0u64; 3];
        assert_eq!(bin_products(&table, n, (&order, bins), &coefs, &mut short), Err(Error::MaterialMismatch));
    }
}
