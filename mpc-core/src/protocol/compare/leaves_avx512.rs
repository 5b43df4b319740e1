//! The comparisons' leaf bits read from their tables eight at a time (AVX-512 gathers), in a
//! ring of 64-bit words; the generic reading (`digit_leaves` of the parent module) elsewhere.
//!
//! Comparison k of a word reads, for digit d, the bit at `at = offset + ((low_k >> shift) &
//! digit_mask)` of its value's tables (`tables[base_k..]`): its lt bit at `at`, its eq bit
//! `eq_offset` higher. Eight comparisons are one vector of offsets, one gather of the words (two
//! where the eq bit is in another word: 8-bit digits), two variable shifts and two bit tests,
//! whose masks are the word's eight bits.
//!
//! With the GEMM kernels, the keystream and the narrow openings, one of the workspace's SIMD
//! kernel modules that may use `unsafe`: the call of a `#[target_feature]` function behind a
//! runtime check (a [`VectorTables`] is only made after it), masked loads within slices whose lengths bound the mask, and gathers whose
//! every index is checked against the table's length first.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

/// Where one digit's leaves are read (see the module's documentation).
#[derive(Clone, Copy, Debug)]
pub(super) struct Digit {
    /// The digit's bits in a comparison's low value start here.
    shift: u32,
    /// The digit's bits: `2^w - 1`.
    digit_mask: u64,
    /// The digit's first table bit.
    offset: u64,
    /// The eq table's distance from the lt table, in bits.
    eq_offset: u64,
    /// Whether a comparison's eq bit is always in its lt bit's word (a digit's two tables fit
    /// one word: 4-bit digits), read with the same gather.
    shared_word: bool,
}

impl Digit {
    /// Digit `d` of `w` bits, whose lt and eq tables take `table_bits` bits (the generic
    /// reading's parameters).
    pub(super) fn new(d: usize, w: u32, table_bits: usize) -> Self {
        Digit {
            shift: w * d as u32,
            digit_mask: (1 << w) - 1,
            offset: (d * table_bits) as u64,
            eq_offset: 1 << w,
            shared_word: table_bits <= 64,
        }
    }
}

/// The tables of one comparison batch, read on vectors: made only where the CPU has AVX-512 F,
/// checked once per batch rather than per word.
#[derive(Clone, Copy, Debug)]
pub(super) struct VectorTables<'a>(&'a [u64]);

impl<'a> VectorTables<'a> {
    /// `tables`, where this CPU runs the vector reading.
    pub(super) fn new(tables: &'a [u64]) -> Option<Self> {
        std::is_x86_feature_detected!("avx512f").then_some(Self(tables))
    }

    /// The lt and eq bits of up to 64 comparisons (bit k from `lows[k]` and the tables at
    /// `bases[k]`) for `digit`; `None` when an index falls outside the tables or the inputs are
    /// of other lengths (the caller's material was not what it claimed). The indices are public
    /// (digits of an opened value), so the reads reveal nothing.
    pub(super) fn digit_leaves(self, lows: &[u64], bases: &[u64], digit: Digit) -> Option<(u64, u64)> {
        if lows.len() != bases.len() || lows.len() > 64 {
            return None;
        }
        // SAFETY: a `VectorTables` exists only where avx512f was detected, the only feature
        // `leaves_avx512` is compiled for.
        unsafe { leaves_avx512(self.0, lows, bases, digit) }
    }
}

#[target_feature(enable = "avx512f")]
fn leaves_avx512(tables: &[u64], lows: &[u64], bases: &[u64], digit: Digit) -> Option<(u64, u64)> {
    let (mut lt, mut eq) = (0u64, 0u64);
    let shift = _mm512_set1_epi64(digit.shift as i64);
    let digit_mask = _mm512_set1_epi64(digit.digit_mask as i64);
    let offset = _mm512_set1_epi64(digit.offset as i64);
    let eq_offset = _mm512_set1_epi64(digit.eq_offset as i64);
    let (low_six, one) = (_mm512_set1_epi64(63), _mm512_set1_epi64(1));
    let len = _mm512_set1_epi64(tables.len() as i64);
    for group in 0..lows.len().div_ceil(8) {
        let first = 8 * group;
        let lanes = (lows.len() - first).min(8);
        let active: __mmask8 = (((1u16 << lanes) - 1) & 0xff) as u8;
        // SAFETY: lanes `first..first + lanes` of `lows` and `bases` (equal lengths, checked by
        // the caller) exist; the masked loads touch no other lane's memory.
        let (low, base) = unsafe {
            (
                _mm512_maskz_loadu_epi64(active, lows.as_ptr().add(first).cast()),
                _mm512_maskz_loadu_epi64(active, bases.as_ptr().add(first).cast()),
            )
        };
        let at = _mm512_add_epi64(offset, _mm512_and_si512(_mm512_srlv_epi64(low, shift), digit_mask));
        let read = |at: __m512i| -> Option<(__m512i, __m512i)> {
            let index = _mm512_add_epi64(base, _mm512_srli_epi64::<6>(at));
            // Every active index within the tables (unsigned: a huge base is out of range too).
            if _mm512_mask_cmplt_epu64_mask(active, index, len) != active {
                return None;
            }
            // SAFETY: each active lane's index was just checked to be below `tables.len()`, and
            // inactive lanes are not read (the mask); the scale is the 8 bytes of a u64.
            let entry = unsafe {
                _mm512_mask_i64gather_epi64::<8>(_mm512_setzero_si512(), active, index, tables.as_ptr().cast())
            };
            Some((entry, _mm512_and_si512(at, low_six)))
        };
        let (entry, bit) = read(at)?;
        let lt_bits = _mm512_mask_test_epi64_mask(active, _mm512_srlv_epi64(entry, bit), one);
        let (eq_entry, eq_bit) = if digit.shared_word {
            (entry, _mm512_add_epi64(bit, eq_offset))
        } else {
            read(_mm512_add_epi64(at, eq_offset))?
        };
        let eq_bits = _mm512_mask_test_epi64_mask(active, _mm512_srlv_epi64(eq_entry, eq_bit), one);
        lt |= u64::from(lt_bits) << first;
        eq |= u64::from(eq_bits) << first;
    }
    Some((lt, eq))
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    #[test]
    fn vector_leaves_equal_the_scalar_ones_and_refuse_indices_out_of_range() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // 64 values' tables of 24 words each: three 8-bit digits, or twelve of four bits.
        let words = 24;
        let tables: Vec<u64> = (0..64 * words).map(|_| next()).collect();
        let Some(vector) = VectorTables::new(&tables) else { return };
        for count in [1usize, 7, 8, 9, 33, 64] {
            for (w, d) in [(4u32, 0usize), (4, 11), (3, 1), (5, 0), (8, 0), (8, 2)] {
                let lows: Vec<u64> = (0..count).map(|_| next()).collect();
                let bases: Vec<u64> = (0..count).map(|_| next() % 64 * words as u64).collect();
                let table_bits = 2usize << w;
                // The generic reading, each comparison's tables their own slice.
                let scalar = super::super::digit_leaves::<u64>(&tables, &lows, &bases, (d, w, table_bits, words));
                assert_eq!(
                    vector.digit_leaves(&lows, &bases, Digit::new(d, w, table_bits)),
                    Some(scalar),
                    "{count} comparisons, w {w}, d {d}"
                );
                assert!(count == 64 || scalar.0 >> count == 0 && scalar.1 >> count == 0, "no bit past the last");
            }
        }
        // An index past the tables: refused, never read.
        let digit = Digit::new(0, 4, 32);
        let (lows, bases) = (alloc::vec![0u64; 9], [alloc::vec![0u64; 8], alloc::vec![tables.len() as u64]].concat());
        assert_eq!(vector.digit_leaves(&lows, &bases, digit), None);
        // Lengths that differ: refused.
        assert_eq!(vector.digit_leaves(&lows[..3], &bases[..2], digit), None);
    }
}
