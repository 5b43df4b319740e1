//! AES-128 in counter mode four blocks to an instruction (VAES on 512-bit vectors), for the
//! [`Expander`](super::Expander) on CPUs that have it: the same keystream as
//! `ctr::Ctr64LE<aes::Aes128>` (block `i` encrypts the IV with `i` added to its first
//! little-endian 64-bit word), at several times the rate of one block per AES-NI instruction.
//!
//! With the GEMM kernels, one of the workspace's SIMD kernel modules that may use `unsafe`:
//! calls of `#[target_feature]` functions behind a runtime check, and vector loads and stores
//! within slices whose lengths are checked first.
#![allow(unsafe_code)]

use core::arch::x86_64::*;
use std::sync::OnceLock;

/// Blocks a loop iteration encrypts: eight vectors of four, enough independent `vaesenc`s in
/// flight to cover the instruction's latency.
const BLOCKS: usize = 32;

/// Whether this CPU runs the wide keystream (detected once).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("vaes")
            && std::is_x86_feature_detected!("aes")
    })
}

/// An AES-128 key schedule and a counter-mode IV: the keystream's state apart from the position.
pub(super) struct WideCtr {
    /// The eleven round keys; wiped on drop.
    round_keys: [[u8; 16]; 11],
    /// The IV's first 64-bit word, to which the block index is added.
    nonce_low: u64,
    /// The IV's second word, in every block as it is.
    nonce_high: u64,
}

impl Drop for WideCtr {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.round_keys);
        zeroize::Zeroize::zeroize(&mut self.nonce_low);
        zeroize::Zeroize::zeroize(&mut self.nonce_high);
    }
}

impl WideCtr {
    /// The keystream of `key` and `iv`, when [`available`]; `None` elsewhere.
    pub(super) fn new(key: &[u8; 16], iv: &[u8; 16]) -> Option<WideCtr> {
        if !available() {
            return None;
        }
        let mut round_keys = [[0u8; 16]; 11];
        // SAFETY: `available` found AES-NI (and SSE2 is part of x86-64).
        unsafe { expand_key(key, &mut round_keys) };
        let word = |at: usize| u64::from_le_bytes(iv[at..at + 8].try_into().expect("8 bytes"));
        Some(WideCtr { round_keys, nonce_low: word(0), nonce_high: word(8) })
    }

    /// Writes the keystream's blocks `first..first + out.len() / 16` into `out` (a whole number
    /// of blocks).
    pub(super) fn blocks(&self, first: u64, out: &mut [u8]) {
        assert!(out.len().is_multiple_of(16), "whole blocks");
        // SAFETY: a `WideCtr` exists only where `available` found AVX-512F, VAES and AES-NI.
        unsafe { keystream(&self.round_keys, self.nonce_low, self.nonce_high, first, out) }
    }
}

/// The AES-128 key schedule of `key` (FIPS 197), by `aeskeygenassist`.
///
/// # Safety
/// The CPU must have AES-NI.
#[target_feature(enable = "aes")]
unsafe fn expand_key(key: &[u8; 16], out: &mut [[u8; 16]; 11]) {
    // SAFETY: unaligned loads and stores of 16 bytes from and into 16-byte arrays.
    unsafe {
        // One round of the schedule: the previous key's words XORed in a prefix chain, plus
        // the assist's rotated, substituted last word.
        let next = |previous: __m128i, assist: __m128i| {
            let assist = _mm_shuffle_epi32::<0xff>(assist);
            let mut key = previous;
            key = _mm_xor_si128(key, _mm_slli_si128::<4>(key));
            key = _mm_xor_si128(key, _mm_slli_si128::<4>(key));
            key = _mm_xor_si128(key, _mm_slli_si128::<4>(key));
            _mm_xor_si128(key, assist)
        };
        let mut k = _mm_loadu_si128(key.as_ptr().cast());
        _mm_storeu_si128(out[0].as_mut_ptr().cast(), k);
        macro_rules! round {
            ($i:expr, $rcon:expr) => {
                k = next(k, _mm_aeskeygenassist_si128::<$rcon>(k));
                _mm_storeu_si128(out[$i].as_mut_ptr().cast(), k);
            };
        }
        round!(1, 0x01);
        round!(2, 0x02);
        round!(3, 0x04);
        round!(4, 0x08);
        round!(5, 0x10);
        round!(6, 0x20);
        round!(7, 0x40);
        round!(8, 0x80);
        round!(9, 0x1b);
        round!(10, 0x36);
    }
}

/// Counter blocks `first..` encrypted under `round_keys` into `out` (whole blocks).
///
/// # Safety
/// The CPU must have AVX-512F and VAES.
#[target_feature(enable = "avx512f,vaes")]
unsafe fn keystream(round_keys: &[[u8; 16]; 11], nonce_low: u64, nonce_high: u64, first: u64, out: &mut [u8]) {
    // SAFETY: 16-byte loads from the 16-byte round keys; every store below writes 64 bytes at
    // an offset the loop bounds keep within `out`.
    unsafe {
        let keys: [__m512i; 11] =
            core::array::from_fn(|r| _mm512_broadcast_i32x4(_mm_loadu_si128(round_keys[r].as_ptr().cast())));
        // Four blocks to a vector: [low + i, high] for i = 0..4, as 64-bit lanes.
        let base = _mm512_set_epi64(
            nonce_high as i64,
            nonce_low.wrapping_add(first).wrapping_add(3) as i64,
            nonce_high as i64,
            nonce_low.wrapping_add(first).wrapping_add(2) as i64,
            nonce_high as i64,
            nonce_low.wrapping_add(first).wrapping_add(1) as i64,
            nonce_high as i64,
            nonce_low.wrapping_add(first) as i64,
        );
        let step =
            |blocks: u64| _mm512_set_epi64(0, blocks as i64, 0, blocks as i64, 0, blocks as i64, 0, blocks as i64);
        // The rounds over the first `count` vectors of four blocks, round by round across them
        // (independent instructions in flight).
        let encrypt = |mut states: [__m512i; BLOCKS / 4], count: usize| {
            for s in &mut states[..count] {
                *s = _mm512_xor_si512(*s, keys[0]);
            }
            for key in &keys[1..10] {
                for s in &mut states[..count] {
                    *s = _mm512_aesenc_epi128(*s, *key);
                }
            }
            for s in &mut states[..count] {
                *s = _mm512_aesenclast_epi128(*s, keys[10]);
            }
            states
        };
        let blocks = out.len() / 16;
        let mut done = 0;
        while done + BLOCKS <= blocks {
            let start = _mm512_add_epi64(base, step(done as u64));
            let states = encrypt(core::array::from_fn(|v| _mm512_add_epi64(start, step(4 * v as u64))), BLOCKS / 4);
            for (v, block) in states.iter().enumerate() {
                _mm512_storeu_si512(out.as_mut_ptr().add((done + 4 * v) * 16).cast(), *block);
            }
            done += BLOCKS;
        }
        while done < blocks {
            let mut one = [_mm512_setzero_si512(); BLOCKS / 4];
            one[0] = _mm512_add_epi64(base, step(done as u64));
            let mut four = [0u8; 64];
            _mm512_storeu_si512(four.as_mut_ptr().cast(), encrypt(one, 1)[0]);
            let take = (blocks - done).min(4) * 16;
            out[done * 16..done * 16 + take].copy_from_slice(&four[..take]);
            zeroize::Zeroize::zeroize(&mut four);
            done += 4;
        }
    }
}
