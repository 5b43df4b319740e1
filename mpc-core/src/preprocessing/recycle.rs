//! Used material's buffers, kept for the material drawn next.
//!
//! Material is large, used once and cold by the time it is dropped: wiping it is a pass over
//! memory at the consuming party, and the next material then goes into fresh pages that the
//! kernel faults in and clears. Drawing the next material over a used buffer instead costs
//! the one pass the draw makes anyway, and the old values are gone as the new ones land: the
//! buffers stay secret-bearing [`Shares`], wiped if the pool drops them.
//!
//! With `std`, every [`Recycled`] of a process draws on one pool: where a process runs several
//! roles (the threaded launcher: both parties and the dealer), material a party used is what
//! the dealer draws its next requests over, and a correction the dealer sent is drawn over by
//! the party, so that no role keeps faulting in pages another one frees. Every buffer is
//! overwritten whole before its values are used or sent (a draw writes all of it, a received
//! message fills it). Without `std`, each [`Recycled`] keeps a pool of its own.

use alloc::vec::Vec;

use crate::ring::Ring;
use crate::share::Shares;

/// Buffers below this many bytes are left to the allocator, which reuses small blocks while
/// they are still in cache.
const SMALLEST: usize = 1 << 16;

/// Where material is drawn over used buffers: at most `limit` 64-bit words of buffers are kept
/// for it (with `std`, in the process's pool, whose limit is the largest any of its users asks
/// for); a limit of 0 keeps nothing and takes nothing.
#[derive(Debug, Default)]
pub(crate) struct Recycled {
    limit: usize,
    #[cfg(not(feature = "std"))]
    own: Pool,
}

impl Recycled {
    /// Recycling with at most `limit` 64-bit words kept; 0 turns it off for this user.
    pub fn new(limit: usize) -> Self {
        #[cfg(feature = "std")]
        {
            let mut pool = process_pool();
            pool.limit = pool.limit.max(limit);
            Self { limit }
        }
        #[cfg(not(feature = "std"))]
        {
            Self { limit, own: Pool::new(limit) }
        }
    }

    /// Keeps `used` for a later [`Recycled::take`] (see [`Pool::put`]); drops (wipes) it when
    /// this user keeps nothing.
    pub fn put<R: Ring>(&mut self, used: Shares<R>) {
        if self.limit == 0 {
            return;
        }
        // What the pool does not keep is wiped here, outside its lock.
        #[cfg(feature = "std")]
        let dropped = process_pool().put(used);
        #[cfg(not(feature = "std"))]
        let dropped = self.own.put(used);
        drop(dropped);
    }

    /// `n` values of a kept buffer, to overwrite (see [`Pool::take`]); `None` when none fits or
    /// this user keeps nothing.
    pub fn take<R: Ring>(&mut self, n: usize) -> Option<Shares<R>> {
        if self.limit == 0 {
            return None;
        }
        #[cfg(feature = "std")]
        let taken = process_pool().take::<R>(n);
        #[cfg(not(feature = "std"))]
        let taken = self.own.take::<R>(n);
        // A buffer taken for fewer values before holds fewer: the rest is zeroed (outside the
        // lock) before the caller overwrites all n.
        taken.map(|values| {
            let mut values = values.into_vec();
            values.resize(n, R::ZERO);
            Shares::from_vec(values)
        })
    }
}

/// The process's pool (its limit starts at 0: nothing is kept until a user asks for room).
#[cfg(feature = "std")]
fn process_pool() -> std::sync::MutexGuard<'static, Pool> {
    static POOL: std::sync::Mutex<Pool> = std::sync::Mutex::new(Pool::new(0));
    // A holder that panicked left the pool whole (its operations only move buffers in and out).
    POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A bounded pool of used material buffers (u64 words; a ring of another size is not kept),
/// counted by their capacity: a buffer taken for fewer values keeps its whole allocation.
#[derive(Debug, Default)]
struct Pool {
    buffers: Vec<Shares<u64>>,
    held: usize,
    limit: usize,
}

impl Pool {
    /// A pool holding buffers of at most `limit` 64-bit words in all at once; 0 keeps nothing.
    const fn new(limit: usize) -> Self {
        Self { buffers: Vec::new(), held: 0, limit }
    }

    /// The 64-bit words of capacity held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held
    }

    /// Keeps `used` for a later [`Pool::take`] when it is large and within the limit, the oldest
    /// buffers making room; returns what it does not keep (`used`, or the buffers it let go),
    /// for the caller to drop (wipe).
    #[must_use = "what the pool does not keep is the caller's to drop"]
    fn put<R: Ring>(&mut self, used: Shares<R>) -> Dropped<R> {
        if !is_word::<R>() || used.len() * 8 < SMALLEST || used.capacity() > self.limit {
            return (Some(used), Vec::new());
        }
        let capacity = used.capacity();
        match bytemuck::allocation::try_cast_vec::<R, u64>(used.into_vec()) {
            Ok(words) => {
                // The oldest buffers make room: the newest match the sizes that the layers ask
                // for next, where a pool full of other sizes would serve nothing.
                let mut evicted = Vec::new();
                while self.held + capacity > self.limit {
                    let oldest = self.buffers.remove(0);
                    self.held -= oldest.capacity();
                    evicted.push(oldest);
                }
                self.held += capacity;
                self.buffers.push(Shares::from_vec(words));
                (None, evicted)
            }
            Err((_, back)) => (Some(Shares::from_vec(back)), Vec::new()),
        }
    }

    /// The smallest held buffer with room for `n` values, at most `n` of its values kept (as
    /// they are, for the caller to overwrite); `None` when none is large enough.
    fn take<R: Ring>(&mut self, n: usize) -> Option<Shares<R>> {
        if !is_word::<R>() {
            return None;
        }
        let (at, _) =
            self.buffers.iter().enumerate().filter(|(_, b)| b.capacity() >= n).min_by_key(|(_, b)| b.capacity())?;
        let words = self.buffers.remove(at).into_vec();
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

/// Buffers [`Pool::put`] did not keep, wiped where they are dropped: the one put, or the
/// oldest ones it let go.
type Dropped<R> = (Option<Shares<R>>, Vec<Shares<u64>>);

/// Whether `R` is stored as a 64-bit word (the pool's buffers change type without a copy).
fn is_word<R: Ring>() -> bool {
    size_of::<R>() == 8 && align_of::<R>() == 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Puts `used`, checking what comes back: `kept` or not, and the capacities let go.
    fn put<R: Ring>(pool: &mut Pool, used: Shares<R>, kept: bool, evicted: &[usize]) {
        let (refused, let_go) = pool.put(used);
        assert_eq!(refused.is_none(), kept);
        assert_eq!(let_go.iter().map(Shares::capacity).collect::<Vec<_>>(), evicted);
    }

    #[test]
    fn keeps_large_buffers_within_its_limit_and_hands_out_the_smallest_that_fits() {
        let words = SMALLEST / 8;
        let mut pool = Pool::new(5 * words);
        put(&mut pool, Shares::<u64>::zeros(words / 2), false, &[]); // too small to keep
        put(&mut pool, Shares::<u64>::zeros(6 * words), false, &[]); // beyond the limit alone
        assert_eq!(pool.held(), 0);
        put(&mut pool, Shares::from_vec(alloc::vec![7u64; 3 * words]), true, &[]);
        put(&mut pool, Shares::from_vec(alloc::vec![9u64; words]), true, &[]);
        assert_eq!(pool.held(), 4 * words);
        let small = pool.take::<u64>(words - 1).expect("fits the smaller one");
        assert_eq!((small.len(), small[0]), (words - 1, 9));
        assert!(pool.take::<u64>(3 * words + 1).is_none(), "none is that large");
        let large = pool.take::<u64>(2 * words).expect("the larger one");
        assert_eq!((large.len(), large[0]), (2 * words, 7));
        assert_eq!(pool.held(), 0);
        assert!(pool.take::<u64>(1).is_none());
        // Taken for fewer values, a buffer still counts its whole allocation when it comes back,
        // and serves a request up to that allocation (its missing values the caller's to write).
        put(&mut pool, large, true, &[]);
        assert_eq!(pool.held(), 3 * words);
        let again = pool.take::<u64>(3 * words).expect("its whole allocation");
        assert_eq!(again.len(), 2 * words);
        put(&mut pool, again, true, &[]);
        // The oldest buffers make room for a new one.
        put(&mut pool, Shares::<u64>::zeros(words), true, &[]);
        put(&mut pool, Shares::<u64>::zeros(2 * words), true, &[3 * words]);
        assert_eq!(pool.held(), 3 * words);
    }

    #[test]
    fn keeps_nothing_at_limit_zero_nor_of_a_narrower_ring() {
        let mut pool = Pool::new(0);
        put(&mut pool, Shares::<u64>::zeros(SMALLEST), false, &[]);
        assert_eq!(pool.held(), 0);
        let mut pool = Pool::new(usize::MAX);
        put(&mut pool, Shares::<u32>::zeros(SMALLEST), false, &[]);
        assert_eq!(pool.held(), 0);
        put(&mut pool, Shares::<u64>::zeros(SMALLEST), true, &[]);
        assert!(pool.take::<u32>(1).is_none());
        assert_eq!(pool.held(), SMALLEST);
    }

    #[test]
    fn a_user_that_keeps_nothing_neither_puts_nor_takes() {
        let mut off = Recycled::new(0);
        off.put(Shares::<u64>::zeros(SMALLEST));
        assert!(off.take::<u64>(1).is_none());
    }

    #[test]
    fn a_taken_buffer_has_the_length_asked_for() {
        let mut pool = Recycled::new(usize::MAX);
        // Whatever the process's pool holds (other tests share it), the buffer has n values.
        pool.put(Shares::<u64>::zeros(SMALLEST));
        let n = SMALLEST / 8 + 3;
        if let Some(taken) = pool.take::<u64>(n) {
            assert_eq!(taken.len(), n);
        }
    }
}
