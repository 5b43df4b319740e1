//! Used material's buffers, kept for the material a party draws next.
//!
//! Material is large, used once and cold by the time it is dropped: wiping it is a pass over
//! memory at the consuming party, and the next material then goes into fresh pages that the
//! kernel faults in and clears. Drawing the next material over a used buffer instead costs
//! the one pass the draw makes anyway, and the old values are gone as the new ones land: the
//! buffers stay secret-bearing [`Shares`], wiped if the pool drops them.

use alloc::vec::Vec;

use crate::ring::Ring;
use crate::share::Shares;

/// Buffers below this many bytes are left to the allocator, which reuses small blocks while
/// they are still in cache.
const SMALLEST: usize = 1 << 16;

/// A bounded pool of used material buffers (u64 words; a ring of another size is not kept),
/// counted by their capacity: a buffer taken for fewer values keeps its whole allocation.
#[derive(Debug, Default)]
pub(crate) struct Recycled {
    buffers: Vec<Shares<u64>>,
    held: usize,
    limit: usize,
}

impl Recycled {
    /// A pool holding buffers of at most `limit` 64-bit words in all at once; 0 keeps nothing.
    pub fn new(limit: usize) -> Self {
        Self { buffers: Vec::new(), held: 0, limit }
    }

    /// The 64-bit words of capacity held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Keeps `used` for a later [`Recycled::take`] when it is large and fits the limit; drops
    /// (wipes) it otherwise.
    pub fn put<R: Ring>(&mut self, used: Shares<R>) {
        if !is_word::<R>() {
            return;
        }
        let values = used.into_vec();
        let capacity = values.capacity();
        if values.len() * 8 < SMALLEST || self.held.saturating_add(capacity) > self.limit {
            drop(Shares::from_vec(values));
            return;
        }
        match bytemuck::allocation::try_cast_vec::<R, u64>(values) {
            Ok(words) => {
                self.held += capacity;
                self.buffers.push(Shares::from_vec(words));
            }
            Err((_, back)) => drop(Shares::from_vec(back)),
        }
    }

    /// `n` values of a held buffer (the smallest that has them), as they are, for the caller
    /// to overwrite; `None` when none is large enough.
    pub fn take<R: Ring>(&mut self, n: usize) -> Option<Shares<R>> {
        if !is_word::<R>() {
            return None;
        }
        let (at, _) = self.buffers.iter().enumerate().filter(|(_, b)| b.len() >= n).min_by_key(|(_, b)| b.len())?;
        let words = self.buffers.swap_remove(at).into_vec();
        self.held -= words.capacity();
        match bytemuck::allocation::try_cast_vec::<u64, R>(words) {
            Ok(mut values) => {
                values.truncate(n);
                Some(Shares::from_vec(values))
            }
            Err((_, back)) => {
                drop(Shares::from_vec(back));
                None
            }
        }
    }
}

/// Whether `R` is stored as a 64-bit word (the pool's buffers change type without a copy).
fn is_word<R: Ring>() -> bool {
    size_of::<R>() == 8 && align_of::<R>() == 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_large_buffers_within_its_limit_and_hands_out_the_smallest_that_fits() {
        let words = SMALLEST / 8;
        let mut pool = Recycled::new(5 * words);
        pool.put(Shares::<u64>::zeros(words / 2)); // too small to keep
        assert_eq!(pool.held(), 0);
        pool.put(Shares::from_vec(alloc::vec![7u64; 3 * words]));
        pool.put(Shares::from_vec(alloc::vec![9u64; words]));
        pool.put(Shares::<u64>::zeros(2 * words)); // beyond the limit: dropped
        assert_eq!(pool.held(), 4 * words);
        let small = pool.take::<u64>(words - 1).expect("fits the smaller one");
        assert_eq!((small.len(), small[0]), (words - 1, 9));
        assert!(pool.take::<u64>(3 * words + 1).is_none(), "none is that large");
        let large = pool.take::<u64>(2 * words).expect("the larger one");
        assert_eq!((large.len(), large[0]), (2 * words, 7));
        assert_eq!(pool.held(), 0);
        assert!(pool.take::<u64>(1).is_none());
        // Taken for fewer values, a buffer still counts its whole allocation when it comes back.
        pool.put(large);
        assert_eq!(pool.held(), 3 * words);
    }

    #[test]
    fn keeps_nothing_at_limit_zero_nor_of_a_narrower_ring() {
        let mut pool = Recycled::new(0);
        pool.put(Shares::<u64>::zeros(SMALLEST));
        assert_eq!(pool.held(), 0);
        let mut pool = Recycled::new(usize::MAX);
        pool.put(Shares::<u32>::zeros(SMALLEST));
        assert_eq!(pool.held(), 0);
        pool.put(Shares::<u64>::zeros(SMALLEST));
        assert!(pool.take::<u32>(1).is_none());
        assert_eq!(pool.held(), SMALLEST);
    }
}
