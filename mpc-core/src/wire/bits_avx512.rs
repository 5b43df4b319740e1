//! Packing values of any width from 1 to [`MAX_WIDTH`] bits into a bit stream, and reading them
//! back, eight values to a 512-bit vector (AVX-512 VBMI byte permutes), for the openings of
//! narrow values on CPUs that have it; the scalar stream of [`super::pack_stream`] elsewhere.
//!
//! Eight values of `w` bits take exactly `w` bytes, so every group of eight starts on a byte and
//! every block of [`BLOCK`] values on a 64-bit word: a block is `w` words of the same stream the
//! scalar accumulator writes. Within a group, value i starts at bit 8·b + t of the group's
//! bytes (b = i·w / 8, t = i·w mod 8): shifted up by t in its lane, its bytes are the group's
//! bytes b, b + 1, ..., which one byte permute per contributing lane gathers (two for `w` >= 8,
//! up to eight for `w` = 1) and ORs together; reading back is one permute that gives lane i the
//! eight bytes from b on, then a shift down by t and a mask.
//!
//! With the GEMM kernels and the keystream, one of the workspace's SIMD kernel modules that may
//! use `unsafe`: calls of `#[target_feature]` functions behind a runtime check, and vector loads
//! and stores within arrays and slices whose lengths are checked first.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

/// Values a block holds: a block of `w`-bit values is `w` whole 64-bit words.
pub(super) const BLOCK: usize = 64;

/// The widest values the vectors pack: a value shifted up by its bit offset in a byte (up to 7)
/// must stay within its 64-bit lane.
pub(super) const MAX_WIDTH: u32 = 56;

/// The byte permutes of one width, computed once per call of the packing: a few hundred byte
/// operations, against a block's 64 values.
pub(super) struct Layout {
    width: usize,
    /// Lane i's shift: its bit offset within its first byte.
    shifts: [u64; 8],
    /// Permutes that gather the group's bytes: for slot s, output byte j takes byte
    /// `index[s][j]` of the shifted lanes where bit j of `present[s]` is set, zero elsewhere.
    index: [[u8; 64]; 8],
    present: [u64; 8],
    slots: usize,
    /// The permute that gives lane i the group's eight bytes from its first one on.
    gather: [u8; 64],
}

impl Layout {
    /// The layout of `width`-bit values, where this CPU has the instructions (AVX-512 F, BW and
    /// VBMI) and 1 <= `width` <= [`MAX_WIDTH`].
    pub(super) fn new(width: u32) -> Option<Self> {
        if !(1..=MAX_WIDTH).contains(&width) || !available() {
            return None;
        }
        let w = width as usize;
        let mut layout =
            Layout { width: w, shifts: [0; 8], index: [[0; 64]; 8], present: [0; 8], slots: 0, gather: [0; 64] };
        let mut filled = [0usize; 64];
        for lane in 0..8 {
            let (first, shift) = (lane * w / 8, lane * w % 8);
            layout.shifts[lane] = shift as u64;
            // The lane's shifted value covers bytes first .. first + last_byte of the group.
            let last_byte = (shift + w - 1) / 8;
            for byte in 0..=last_byte {
                let (j, slot) = (first + byte, filled[first + byte]);
                layout.index[slot][j] = (8 * lane + byte) as u8;
                layout.present[slot] |= 1 << j;
                filled[j] += 1;
                layout.slots = layout.slots.max(slot + 1);
            }
            for byte in 0..8 {
                // Bytes past the group's w are zero in the masked load: any of them will do.
                layout.gather[8 * lane + byte] = (first + byte).min(63) as u8;
            }
        }
        Some(layout)
    }

    /// Packs a block's 64 values, each below 2^width, into the block's `8 · width` bytes.
    ///
    /// # Panics
    /// If `out` is not `8 · width` bytes long.
    pub(super) fn pack(&self, values: &[u64; BLOCK], out: &mut [u8]) {
        assert_eq!(out.len(), 8 * self.width, "a block's bytes");
        // SAFETY: a `Layout` exists only where `available()` found AVX-512 F, BW and VBMI, the
        // features `pack_avx512` is compiled for.
        unsafe { pack_avx512(self, values, out) }
    }

    /// Reads a block's 64 values back from its `8 · width` bytes.
    ///
    /// # Panics
    /// If `bytes` is not `8 · width` bytes long.
    pub(super) fn unpack(&self, bytes: &[u8], values: &mut [u64; BLOCK]) {
        assert_eq!(bytes.len(), 8 * self.width, "a block's bytes");
        // SAFETY: as in `pack`.
        unsafe { unpack_avx512(self, bytes, values) }
    }
}

/// Whether this CPU has the byte permutes (detected once by the standard library's cache).
fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vbmi")
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn pack_avx512(layout: &Layout, values: &[u64; BLOCK], out: &mut [u8]) {
    let w = layout.width;
    let mut index = [_mm512_setzero_si512(); 8];
    for (vector, bytes) in index.iter_mut().zip(&layout.index) {
        // SAFETY: a 64-byte load from an array of 64 bytes.
        *vector = unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) };
    }
    // SAFETY: as above, from an array of eight u64.
    let shifts = unsafe { _mm512_loadu_si512(layout.shifts.as_ptr().cast()) };
    // A group is w bytes: the byte mask of the store has w bits, as a w-bit value's mask.
    let store = super::width_mask(w as u32);
    for group in 0..8 {
        // SAFETY: a 64-byte load of values 8 · group to 8 · group + 7 of the 64.
        let v = unsafe { _mm512_loadu_si512(values[8 * group..].as_ptr().cast()) };
        let shifted = _mm512_sllv_epi64(v, shifts);
        let mut bytes = _mm512_setzero_si512();
        for (&index, &present) in index.iter().zip(&layout.present).take(layout.slots) {
            bytes = _mm512_or_si512(bytes, _mm512_maskz_permutexvar_epi8(present, index, shifted));
        }
        // SAFETY: `out` holds 8 · w bytes (checked by `pack`); the masked store writes bytes
        // w · group to w · group + w - 1 only, group < 8.
        unsafe { _mm512_mask_storeu_epi8(out.as_mut_ptr().add(w * group).cast(), store, bytes) };
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn unpack_avx512(layout: &Layout, bytes: &[u8], values: &mut [u64; BLOCK]) {
    let w = layout.width;
    // SAFETY: 64-byte loads from arrays of 64 bytes.
    let (shifts, gather) = unsafe {
        (_mm512_loadu_si512(layout.shifts.as_ptr().cast()), _mm512_loadu_si512(layout.gather.as_ptr().cast()))
    };
    // The group's w bytes are loaded; each value keeps its w bits (the same mask, twice).
    let load = super::width_mask(w as u32);
    let mask = _mm512_set1_epi64(load as i64);
    for group in 0..8 {
        // SAFETY: `bytes` holds 8 · w bytes (checked by `unpack`); the masked load reads bytes
        // w · group to w · group + w - 1 only (masked-out bytes are not accessed), group < 8.
        let packed = unsafe { _mm512_maskz_loadu_epi8(load, bytes.as_ptr().add(w * group).cast()) };
        let lanes = _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutexvar_epi8(gather, packed), shifts), mask);
        // SAFETY: the 64-byte store writes values 8 · group to 8 · group + 7 of the 64.
        unsafe { _mm512_storeu_si512(values[8 * group..].as_mut_ptr().cast(), lanes) };
    }
}
