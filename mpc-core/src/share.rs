//! Secret shares: additive over the ring, XOR for bits, and seeded zero-sharing.
//!
//! An additive sharing of `x` among n parties is n ring elements that sum to `x`; any n-1 of them
//! are uniform and independent of `x`. XOR sharing does the same with `^` for packed bits.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};

use chacha20::ChaCha12Rng;
use ctr::cipher::{KeyIvInit, StreamCipher};
use rand_core::{Rng, SeedableRng};
use subtle::ConstantTimeEq;
use zeroize::{DefaultIsZeroes, Zeroize, ZeroizeOnDrop};

use crate::ring::{self, Ring};

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod vaes;

/// One party's shares of a vector of secrets; wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Shares<R: Ring>(Vec<R>);

impl<R: Ring> Shares<R> {
    /// Wraps a vector of share values.
    pub fn from_vec(v: Vec<R>) -> Self {
        Self(v)
    }

    /// `n` zero shares.
    pub fn zeros(n: usize) -> Self {
        Self(vec![R::ZERO; n])
    }

    /// Takes the values out, leaving this container empty (the caller now owns the secret).
    pub fn into_vec(mut self) -> Vec<R> {
        core::mem::take(&mut self.0)
    }

    /// An empty sharing with room for `n` values.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Appends values (a growth beyond the capacity leaves the old buffer unwiped: reserve it
    /// with [`Shares::with_capacity`]).
    pub fn extend_from(&mut self, values: &[R]) {
        self.0.extend_from_slice(values);
    }

    /// Appends the values of `values` (as [`Shares::extend_from`]: reserve the room first).
    pub fn extend_with(&mut self, values: impl Iterator<Item = R>) {
        self.0.extend(values);
    }

    /// Moves the values from `at` on into a new sharing; this one keeps its buffer, whose
    /// spare capacity (the moved values' old copies) is wiped with it.
    pub fn split_off(&mut self, at: usize) -> Self {
        Self(self.0.split_off(at))
    }

    /// Local addition of two sharings.
    pub fn add(&self, other: &[R]) -> Self {
        let mut out = self.clone();
        ring::add_assign(&mut out, other);
        out
    }

    /// Local subtraction of two sharings.
    pub fn sub(&self, other: &[R]) -> Self {
        let mut out = self.clone();
        ring::sub_assign(&mut out, other);
        out
    }

    /// Local negation.
    pub fn neg(&self) -> Self {
        Self(self.0.iter().map(|x| x.wrapping_neg()).collect())
    }
}

impl<R: Ring> Deref for Shares<R> {
    type Target = [R];
    fn deref(&self) -> &[R] {
        &self.0
    }
}

impl<R: Ring> DerefMut for Shares<R> {
    fn deref_mut(&mut self) -> &mut [R] {
        &mut self.0
    }
}

impl<R: Ring> core::fmt::Debug for Shares<R> {
    // Share values never go to logs.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Shares(len = {})", self.0.len())
    }
}

impl<R: Ring> Zeroize for Shares<R> {
    /// Overwrites every value (and the spare capacity) with zeros and empties the container.
    fn zeroize(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites a vector's values and spare capacity with zeros, then empties it.
///
/// `zeroize`'s own `Vec` impl writes one element at a time through a volatile pointer; the
/// slice impl used here is a bulk fill behind an optimisation barrier, several times faster on
/// the cache-resident buffers the protocols drop (material right after its use).
pub(crate) fn wipe<T: DefaultIsZeroes>(v: &mut Vec<T>) {
    v.as_mut_slice().zeroize();
    v.spare_capacity_mut().zeroize();
    v.clear();
}

impl<R: Ring> Drop for Shares<R> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<R: Ring> ZeroizeOnDrop for Shares<R> {}

/// Splits each value of `secret` into `parties` additive shares (`parties >= 1`).
pub fn share_additive<R: Ring, G: Rng + ?Sized>(secret: &[R], parties: usize, rng: &mut G) -> Vec<Shares<R>> {
    assert!(parties >= 1, "at least one party");
    let mut out: Vec<Shares<R>> = Vec::with_capacity(parties);
    let mut last = Shares::from_vec(secret.to_vec());
    for _ in 1..parties {
        let mut s = Shares::zeros(secret.len());
        ring::fill_uniform(rng, &mut s);
        ring::sub_assign(&mut last, &s);
        out.push(s);
    }
    out.push(last);
    out
}

/// Sums additive shares back into the secret.
///
/// # Panics
/// If the share vectors differ in length.
pub fn reconstruct_additive<R: Ring>(shares: &[&[R]]) -> Vec<R> {
    let n = shares.first().map_or(0, |s| s.len());
    let mut out = vec![R::ZERO; n];
    for s in shares {
        assert_eq!(s.len(), n, "share vectors differ in length");
        ring::add_assign(&mut out, s);
    }
    out
}

/// Splits each word of `secret` (64 packed bits) into `parties` XOR shares.
pub fn share_xor<G: Rng + ?Sized>(secret: &[u64], parties: usize, rng: &mut G) -> Vec<Shares<u64>> {
    assert!(parties >= 1, "at least one party");
    let mut out: Vec<Shares<u64>> = Vec::with_capacity(parties);
    let mut last = Shares::from_vec(secret.to_vec());
    for _ in 1..parties {
        let mut s = Shares::zeros(secret.len());
        ring::fill_uniform(rng, &mut s);
        for (l, r) in last.iter_mut().zip(s.iter()) {
            *l ^= r;
        }
        out.push(s);
    }
    out.push(last);
    out
}

/// XORs shares back into the packed secret bits.
///
/// # Panics
/// If the share vectors differ in length.
pub fn reconstruct_xor(shares: &[&[u64]]) -> Vec<u64> {
    let n = shares.first().map_or(0, |s| s.len());
    let mut out = vec![0u64; n];
    for s in shares {
        assert_eq!(s.len(), n, "share vectors differ in length");
        for (o, x) in out.iter_mut().zip(s.iter()) {
            *o ^= x;
        }
    }
    out
}

/// A 256-bit PRG seed; compared in constant time and wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Seed(pub(crate) [u8; 32]);

impl Seed {
    /// Bytes of a seed on the wire.
    pub const LEN: usize = 32;

    /// Wraps seed bytes (from an OS RNG, or received from the dealer).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Draws a fresh seed from a cryptographic RNG.
    pub fn random<G: rand_core::CryptoRng + ?Sized>(rng: &mut G) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// The seed bytes (for sending it to the party that shares it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A seed derived from this one and `words`, by a PRF cascade: each word keys the next seed
    /// as ChaCha12's first 32 bytes on the stream numbered by the word (a GGM-style chain, a PRF
    /// on fixed-length inputs when ChaCha12 is one). Different word lists give independent seeds.
    pub fn derive(&self, words: &[u64]) -> Seed {
        let mut key = Seed(self.0);
        for &w in words {
            let mut rng = ChaCha12Rng::from_seed(key.0);
            rng.set_stream(w);
            rng.fill_bytes(&mut key.0);
        }
        key
    }

    /// The material expander this seed keys on an independent `stream`: AES-128 in counter
    /// mode under the key [`Seed::derive`] gives for the stream.
    pub fn expander(&self, stream: u64) -> Expander {
        let key = self.derive(&[streams::EXPANDER, stream]);
        let (aes_key, iv) = key.0.split_at(16);
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if let Some(wide) = vaes::WideCtr::new(aes_key.try_into().expect("16 bytes"), iv.try_into().expect("16 bytes"))
        {
            return Expander(Keystream::Wide { ctr: wide, position: 0 });
        }
        Expander(Keystream::Ctr(ctr::Ctr64LE::new(aes_key.into(), iv.into())))
    }

    /// The ChaCha12 generator this seed keys, on an independent `stream`.
    pub fn prg(&self, stream: u64) -> Prg {
        let mut rng = ChaCha12Rng::from_seed(self.0);
        rng.set_stream(stream);
        rng
    }
}

impl ConstantTimeEq for Seed {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Seed {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Seed {}

impl core::fmt::Debug for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// The PRG of the project: ChaCha12, wiped on drop.
pub type Prg = ChaCha12Rng;

/// The generator that expands correlated randomness (the bulk of the dealer's and the parties'
/// offline work): AES-128 in counter mode, with AES-NI where the CPU has it (chosen at run
/// time, a constant-time software AES elsewhere); about three times ChaCha12's rate on x86.
/// Its key schedule is wiped on drop. Where the CPU has VAES, four blocks to an instruction
/// (the same keystream).
pub struct Expander(Keystream);

/// The keystream behind an [`Expander`]: the `ctr` crate's, or the VAES one (at a byte
/// position of its own). One per request's expander, never held in bulk: the size difference
/// of the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Keystream {
    Ctr(ctr::Ctr64LE<aes::Aes128>),
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    Wide {
        ctr: vaes::WideCtr,
        position: u64,
    },
}

impl Expander {
    /// Overwrites `out` with the next uniform ring elements of the stream.
    pub fn fill<R: Ring>(&mut self, out: &mut [R]) {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
        match &mut self.0 {
            Keystream::Ctr(ctr) => {
                bytes.fill(0);
                ctr.apply_keystream(bytes);
            }
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            Keystream::Wide { ctr, position } => {
                // A partial block at either end comes from a block of its own; the whole ones
                // are written in place.
                let start = *position;
                let head = ((16 - start % 16) % 16).min(bytes.len() as u64) as usize;
                let whole = (bytes.len() - head) / 16 * 16;
                let partial = |ctr: &vaes::WideCtr, at: u64, out: &mut [u8]| {
                    let mut block = [0u8; 16];
                    ctr.blocks(at / 16, &mut block);
                    let from = (at % 16) as usize;
                    out.copy_from_slice(&block[from..from + out.len()]);
                    block.zeroize();
                };
                let (first, rest) = bytes.split_at_mut(head);
                let (middle, last) = rest.split_at_mut(whole);
                if !first.is_empty() {
                    partial(ctr, start, first);
                }
                ctr.blocks((start + head as u64) / 16, middle);
                if !last.is_empty() {
                    partial(ctr, start + (head + whole) as u64, last);
                }
                *position = start + bytes.len() as u64;
            }
        }
    }

    /// Takes the next `out.len()` elements of the stream off `out` in place (out - stream): the
    /// stream as [`Expander::fill`] gives it, drawn a block at a time into a small buffer, so
    /// that a large `out` needs no buffer of its size for the stream (one pass over it).
    pub fn subtract_from<R: Ring>(&mut self, out: &mut [R]) {
        let mut block = [R::ZERO; 512];
        for chunk in out.chunks_mut(block.len()) {
            let drawn = &mut block[..chunk.len()];
            self.fill(drawn);
            ring::sub_assign(chunk, drawn);
        }
        block.zeroize();
    }
}

impl core::fmt::Debug for Expander {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Expander(..)")
    }
}

/// Stream numbers that keep the uses of one seed apart.
pub(crate) mod streams {
    /// Pairwise masks for inputs (zero-sharing).
    pub const INPUT: u64 = 1;
    /// Dealer-derived correlated randomness (the generator of one request's seed).
    pub const DEALER: u64 = 2;
    /// Domain tag, first word of the PRF input that keys one request's material.
    pub const MATERIAL: u64 = 3;
    /// Domain tag, first word of the PRF input that keys an [`Expander`](super::Expander).
    pub const EXPANDER: u64 = 4;
}

/// Pseudo-random zero-sharing between P0 and P1: both hold the same seed and draw the same masks
/// in lockstep, so a party inputs a secret `x` by keeping `x - r` while its peer keeps `r`,
/// with no message at all (CrypTen's PRZS for two parties).
pub struct ZeroSharing {
    prg: Prg,
}

impl ZeroSharing {
    /// Keys the generator with the pairwise seed.
    pub fn new(seed: &Seed) -> Self {
        Self { prg: seed.prg(streams::INPUT) }
    }

    /// The next `n` masks (identical at both parties).
    pub fn masks<R: Ring>(&mut self, n: usize) -> Shares<R> {
        let mut r = Shares::zeros(n);
        ring::fill_uniform(&mut self.prg, &mut r);
        r
    }
}

impl core::fmt::Debug for ZeroSharing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ZeroSharing(..)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_core::SeedableRng;

    use super::*;

    proptest! {
        #[test]
        fn additive_shares_reconstruct(secret: Vec<u64>, parties in 1usize..5, seed: u64) {
            let mut rng = Prg::seed_from_u64(seed);
            let shares = share_additive(&secret, parties, &mut rng);
            prop_assert_eq!(shares.len(), parties);
            let refs: Vec<&[u64]> = shares.iter().map(|s| &s[..]).collect();
            prop_assert_eq!(reconstruct_additive(&refs), secret);
        }

        #[test]
        fn additive_shares_reconstruct_in_z2_32(secret: Vec<u32>, seed: u64) {
            let mut rng = Prg::seed_from_u64(seed);
            let shares = share_additive(&secret, 3, &mut rng);
            let refs: Vec<&[u32]> = shares.iter().map(|s| &s[..]).collect();
            prop_assert_eq!(reconstruct_additive(&refs), secret);
        }

        #[test]
        fn xor_shares_reconstruct(secret: Vec<u64>, parties in 1usize..5, seed: u64) {
            let mut rng = Prg::seed_from_u64(seed);
            let shares = share_xor(&secret, parties, &mut rng);
            let refs: Vec<&[u64]> = shares.iter().map(|s| &s[..]).collect();
            prop_assert_eq!(reconstruct_xor(&refs), secret);
        }
    }

    #[test]
    fn a_single_share_does_not_follow_the_secret() {
        // Sharing the same secret twice gives unrelated shares.
        let mut rng = Prg::seed_from_u64(1);
        let a = share_additive(&[42u64; 8], 2, &mut rng);
        let b = share_additive(&[42u64; 8], 2, &mut rng);
        assert_ne!(&a[0][..], &b[0][..]);
        assert!(a[0].iter().all(|&x| x != 42));
    }

    /// The VAES keystream is the `ctr` crate's, at any block and however a fill is cut,
    /// including an IV whose counter word wraps.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[test]
    fn the_wide_keystream_is_the_ctr_crates() {
        use ctr::cipher::StreamCipherSeek;
        if !vaes::available() {
            std::eprintln!("skipped: this CPU has no VAES");
            return;
        }
        let mut rng = Prg::seed_from_u64(7);
        for low in [0u64, 12345, u64::MAX - 40, u64::MAX] {
            let mut key = [0u8; 16];
            let mut iv = [0u8; 16];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut iv);
            iv[..8].copy_from_slice(&low.to_le_bytes());
            let wide = vaes::WideCtr::new(&key, &iv).expect("available");
            let reference = |at: u64, len: usize| {
                let mut c = ctr::Ctr64LE::<aes::Aes128>::new((&key).into(), (&iv).into());
                c.seek(at);
                let mut out = vec![0u8; len];
                c.apply_keystream(&mut out);
                out
            };
            for (first, blocks) in [(0u64, 1usize), (0, 33), (3, 70), (1000, 32), (7, 3)] {
                let mut out = vec![0xa5u8; 16 * blocks];
                wide.blocks(first, &mut out);
                prop_assert_eq_plain(&out, &reference(16 * first, 16 * blocks));
            }
            // An expander on this key, filled in odd cuts of u32 and u64, against one stream.
            let mut expander =
                Expander(Keystream::Wide { ctr: vaes::WideCtr::new(&key, &iv).expect("available"), position: 0 });
            let mut got = Vec::new();
            for cut in [1usize, 3, 8, 0, 97, 2, 64, 5] {
                let mut words = vec![0u32; cut];
                expander.fill(&mut words);
                got.extend(words.iter().flat_map(|w| w.to_le_bytes()));
                let mut longs = vec![0u64; cut];
                expander.fill(&mut longs);
                got.extend(longs.iter().flat_map(|w| w.to_le_bytes()));
            }
            prop_assert_eq_plain(&got, &reference(0, got.len()));
        }
    }

    fn prop_assert_eq_plain(a: &[u8], b: &[u8]) {
        assert_eq!(a.len(), b.len());
        assert!(a == b, "keystreams differ at byte {:?}", a.iter().zip(b).position(|(x, y)| x != y));
    }

    #[test]
    fn zero_sharing_agrees_between_parties() {
        let seed = Seed::from_bytes([9u8; 32]);
        let mut p0 = ZeroSharing::new(&seed);
        let mut p1 = ZeroSharing::new(&seed.clone());
        let r0 = p0.masks::<u64>(100);
        let r1 = p1.masks::<u64>(100);
        assert_eq!(&r0[..], &r1[..]);
        assert_ne!(&p0.masks::<u64>(100)[..], &r0[..], "masks advance");
    }

    #[test]
    fn seeds_compare_through_subtle_at_every_byte_and_hide_in_debug() {
        // Equality is subtle's `ct_eq` (no early exit on the first differing byte): it agrees
        // with the bytes whichever byte differs.
        let a = Seed::from_bytes([1u8; 32]);
        assert_eq!(a, a.clone());
        assert_eq!(a.ct_eq(&a.clone()).unwrap_u8(), 1);
        for i in 0..32 {
            let mut bytes = [1u8; 32];
            bytes[i] ^= 0x80;
            let b = Seed::from_bytes(bytes);
            assert_ne!(a, b, "byte {i}");
            assert_eq!(a.ct_eq(&b).unwrap_u8(), 0, "byte {i}");
        }
        assert_eq!(alloc::format!("{a:?}"), "Seed(..)");
    }

    #[test]
    fn expanders_agree_on_one_seed_and_stream_however_the_stream_is_cut() {
        let seed = Seed::from_bytes([9; 32]);
        let mut whole = [0u64; 1000];
        seed.expander(5).fill(&mut whole);
        let mut cut = [0u64; 1000];
        let mut e = seed.expander(5);
        for piece in cut.chunks_mut(333) {
            e.fill(piece);
        }
        assert_eq!(whole, cut, "the parties and the dealer draw in different pieces");
        let mut other = [0u64; 1000];
        seed.expander(6).fill(&mut other);
        assert_ne!(whole, other, "another stream");
        Seed::from_bytes([8; 32]).expander(5).fill(&mut other);
        assert_ne!(whole, other, "another seed");
        // Uniform-looking: about half the bits set.
        let ones: u32 = whole.iter().map(|x| x.count_ones()).sum();
        assert!((31_000..33_000).contains(&ones), "{ones} of 64000 bits set");
        assert_eq!(alloc::format!("{:?}", seed.expander(5)), "Expander(..)");
    }

    #[test]
    fn subtracting_the_stream_takes_off_what_fill_draws_from_any_position() {
        let seed = Seed::from_bytes([4; 32]);
        // 1500 values (not a whole number of blocks) after 3 (a position inside a block).
        let w: Vec<u64> = (0..1500u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let (mut drawn, mut taken) = (seed.expander(7), seed.expander(7));
        let mut head = [0u64; 3];
        drawn.fill(&mut head);
        taken.fill(&mut head);
        let mut b = vec![0u64; w.len()];
        drawn.fill(&mut b);
        let mut f = w.clone();
        taken.subtract_from(&mut f);
        let expect: Vec<u64> = w.iter().zip(&b).map(|(w, b)| w.wrapping_sub(*b)).collect();
        assert_eq!(f, expect);
        // Both streams are at the same place after.
        let (mut next_drawn, mut next_taken) = ([0u64; 5], [0u64; 5]);
        drawn.fill(&mut next_drawn);
        taken.fill(&mut next_taken);
        assert_eq!(next_drawn, next_taken);
    }

    #[test]
    fn shares_wipe_themselves_on_drop_and_hide_in_debug() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<Shares<u64>>();
        let mut s = Shares::from_vec(alloc::vec![5u64, 6, 7]);
        assert_eq!(alloc::format!("{s:?}"), "Shares(len = 3)");
        // Drop runs exactly this wipe.
        s.zeroize();
        assert!(s.is_empty(), "wiped shares hold nothing");
        // Handing the values over leaves nothing behind to wipe twice.
        assert_eq!(Shares::from_vec(alloc::vec![5u64, 6, 7]).into_vec(), alloc::vec![5, 6, 7]);
    }
}
