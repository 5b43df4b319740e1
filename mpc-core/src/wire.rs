//! Wire format: raw little-endian ring elements, one message per peer per round.
//!
//! A message carries a known number of elements, so its length is fixed by the protocol and no
//! header is needed; a message of any other length is rejected by the transport.

use alloc::vec::Vec;

use crate::error::Error;
use crate::ring::Ring;
use crate::share::Shares;
use crate::transport::{PartyId, Transport};

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod bits_avx512;

/// Sends the ring elements of `parts`, concatenated, as one message.
///
/// A transport within one process ([`Transport::hands_over_words`]) gets the parts copied once
/// into a buffer of words it passes to the peer: no second copy into its own message, and no
/// copy out and wipe of the message at the peer ([`recv_owned`]).
pub fn send<R: Ring, T: Transport>(transport: &mut T, to: PartyId, parts: &[&[R]]) -> Result<(), Error> {
    if transport.hands_over_words()
        && let Some(words) = parts.iter().map(|p| as_words(p)).collect::<Option<Vec<&[u64]>>>()
    {
        return transport.send_words(to, words.concat()).map_err(Error::transport);
    }
    let single = parts.len() == 1 && cfg!(target_endian = "little");
    if single {
        return transport.send(to, bytemuck::cast_slice(parts[0])).map_err(Error::transport);
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf: Vec<R> = Vec::with_capacity(total);
    for p in parts {
        buf.extend(p.iter().map(|x| x.native_to_le()));
    }
    transport.send(to, bytemuck::cast_slice(&buf)).map_err(Error::transport)
}

/// The values of a 64-bit ring as the words they are stored as (`None` for another ring).
fn as_words<R: Ring>(values: &[R]) -> Option<&[u64]> {
    if size_of::<R>() == 8 { bytemuck::try_cast_slice(values).ok() } else { None }
}

/// Sends `part` as one message (the bytes [`send`] would), handing its buffer to the transport
/// ([`Transport::send_words`]) where the ring is 64 bits wide: a transport within one process
/// passes it on instead of copying it. Otherwise sent by [`send`] and wiped.
pub fn send_owned<R: Ring, T: Transport>(transport: &mut T, to: PartyId, part: Shares<R>) -> Result<(), Error> {
    match bytemuck::allocation::try_cast_vec::<R, u64>(part.into_vec()) {
        Ok(words) => transport.send_words(to, words).map_err(Error::transport),
        Err((_, values)) => send(transport, to, &[&Shares::from_vec(values)]),
    }
}

/// Receives one message of exactly `len` ring elements in a buffer the transport provides
/// ([`Transport::recv_words`]) where the ring is 64 bits wide, else in a zeroed one.
pub fn recv_owned<R: Ring, T: Transport>(transport: &mut T, from: PartyId, len: usize) -> Result<Shares<R>, Error> {
    if size_of::<R>() == 8 {
        let words = transport.recv_words(from, len).map_err(Error::transport)?;
        return Ok(match bytemuck::allocation::try_cast_vec::<u64, R>(words) {
            Ok(values) => Shares::from_vec(values),
            // A 64-bit ring the buffer cannot be reread as (another alignment): the message is
            // received already, so its values are copied out and its buffer wiped.
            Err((_, words)) => {
                let words = Shares::from_vec(words);
                Shares::from_vec(words.iter().map(|&w| bytemuck::cast::<u64, R>(w)).collect())
            }
        });
    }
    let mut out = Shares::zeros(len);
    recv(transport, from, &mut out)?;
    Ok(out)
}

/// Receives one message holding exactly `out.len()` ring elements.
pub fn recv<R: Ring, T: Transport>(transport: &mut T, from: PartyId, out: &mut [R]) -> Result<(), Error> {
    transport.recv(from, bytemuck::cast_slice_mut(out)).map_err(Error::transport)?;
    if cfg!(target_endian = "big") {
        for x in out.iter_mut() {
            *x = x.le_to_native();
        }
    }
    Ok(())
}

/// Ring words holding `n` values of `width` bits packed back to back ([`pack_low_bits`]).
pub const fn packed_words<R: Ring>(n: usize, width: u32) -> usize {
    (n * width as usize).div_ceil(R::BITS as usize)
}

/// The low `width` bits of each value, packed back to back from bit 0 of the first word of
/// `out` ([`packed_words`] words long): the message of an opening mod 2^width.
pub fn pack_low_bits<R: Ring>(values: &[R], width: u32, out: &mut [R]) {
    pack_parts(values, width, out, |v| v);
}

/// The `n` values of `width` bits packed in `words` ([`pack_low_bits`]), added to `into`
/// mod 2^width: the opening of the values whose other shares `into` holds.
pub fn add_packed_low_bits<R: Ring>(words: &[R], width: u32, into: &mut [R]) -> Result<(), Error> {
    add_packed_parts(words, width, into, |v| v, |v| v)
}

/// The low `width` (1 to 64) bits of a u64.
const fn width_mask(width: u32) -> u64 {
    u64::MAX >> (64 - width)
}

/// Bytes a value takes when the packed stream may be written a whole number of bytes at a time
/// (a width of whole bytes, on a little-endian target, where the words' bytes are the stream's):
/// each value is then one unaligned store or load, with no chain through an accumulator.
fn whole_bytes(width: u32) -> Option<usize> {
    (width.is_multiple_of(8) && cfg!(target_endian = "little")).then_some(width as usize / 8)
}

/// [`pack_low_bits`] of `part(v)` for each value v, in one pass ([`pack_stream`], or for whole
/// bytes [`pack_bytes`]: the same stream).
pub(crate) fn pack_parts<R: Ring>(values: &[R], width: u32, out: &mut [R], part: impl Fn(R) -> R) {
    let done = pack_blocks(values, width, out, &part);
    let (values, out) = (&values[done..], &mut out[packed_words::<R>(done, width)..]);
    match whole_bytes(width) {
        Some(size) => pack_bytes(values, width, size, out, part),
        None => pack_stream(values, width, out, part),
    }
}

/// [`add_packed_low_bits`] to `part(v)` for each value v of `into`, each sum mod 2^width then
/// written back as `finish(sum)`, in one pass (reading the stream as [`pack_parts`] wrote it).
pub(crate) fn add_packed_parts<R: Ring>(
    words: &[R],
    width: u32,
    into: &mut [R],
    part: impl Fn(R) -> R,
    finish: impl Fn(R) -> R,
) -> Result<(), Error> {
    if words.len() != packed_words::<R>(into.len(), width) {
        return Err(Error::ShapeMismatch);
    }
    let done = add_blocks(words, width, into, &part, &finish);
    let (words, into) = (&words[packed_words::<R>(done, width)..], &mut into[done..]);
    match whole_bytes(width) {
        Some(size) => {
            let mask = width_mask(width);
            for (i, v) in into.iter_mut().enumerate() {
                *v = finish(R::from_u64(part(*v).to_u64().wrapping_add(read_bytes(words, size, i)) & mask));
            }
        }
        None => add_stream(words, width, into, part, finish),
    }
    Ok(())
}

/// Packs the whole blocks of `values` ([`bits_avx512::BLOCK`] each, a whole number of words) as
/// [`pack_parts`] does, eight parts to a vector, where this CPU has the byte permutes and the
/// width allows; returns how many values it packed (none elsewhere: the scalar stream packs them).
fn pack_blocks<R: Ring>(values: &[R], width: u32, out: &mut [R], part: &impl Fn(R) -> R) -> usize {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if let Some(layout) = (values.len() >= bits_avx512::BLOCK).then(|| bits_avx512::Layout::new(width)).flatten() {
        let mask = width_mask(width);
        let stream: &mut [u8] = bytemuck::cast_slice_mut(out);
        // Secret parts: wiped when the packing is done.
        let mut parts = zeroize::Zeroizing::new([0u64; bits_avx512::BLOCK]);
        let blocks = values.chunks_exact(bits_avx512::BLOCK);
        for (block, bytes) in blocks.zip(stream.chunks_exact_mut(8 * width as usize)) {
            for (p, &v) in parts.iter_mut().zip(block) {
                *p = part(v).to_u64() & mask;
            }
            layout.pack(&parts, bytes);
        }
        return values.len() / bits_avx512::BLOCK * bits_avx512::BLOCK;
    }
    let _ = (values, width, out, part);
    0
}

/// Adds the whole blocks of a packed stream to `into` as [`add_packed_parts`] does, eight parts
/// to a vector, where [`pack_blocks`] packs them; returns how many values it opened.
fn add_blocks<R: Ring>(
    words: &[R],
    width: u32,
    into: &mut [R],
    part: &impl Fn(R) -> R,
    finish: &impl Fn(R) -> R,
) -> usize {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if let Some(layout) = (into.len() >= bits_avx512::BLOCK).then(|| bits_avx512::Layout::new(width)).flatten() {
        let mask = width_mask(width);
        let stream: &[u8] = bytemuck::cast_slice(words);
        let mut theirs = zeroize::Zeroizing::new([0u64; bits_avx512::BLOCK]);
        let blocks = into.chunks_exact_mut(bits_avx512::BLOCK);
        for (block, bytes) in blocks.zip(stream.chunks_exact(8 * width as usize)) {
            layout.unpack(bytes, &mut theirs);
            for (v, &t) in block.iter_mut().zip(theirs.iter()) {
                *v = finish(R::from_u64(part(*v).to_u64().wrapping_add(t) & mask));
            }
        }
        return into.len() / bits_avx512::BLOCK * bits_avx512::BLOCK;
    }
    let _ = (words, width, into, part, finish);
    0
}

/// The packed stream written by a running accumulator of twice the word's bits, which takes
/// each part at its offset and gives out every full word.
fn pack_stream<R: Ring>(values: &[R], width: u32, out: &mut [R], part: impl Fn(R) -> R) {
    let (bits, mask) = (R::BITS, width_mask(width));
    let (mut acc, mut filled, mut word) = (0u128, 0u32, 0usize);
    for &v in values {
        acc |= u128::from(part(v).to_u64() & mask) << filled;
        filled += width;
        if filled >= bits {
            out[word] = R::from_u64(acc as u64);
            word += 1;
            acc >>= bits;
            filled -= bits;
        }
    }
    if filled > 0 {
        out[word] = R::from_u64(acc as u64);
    }
}

/// The packed stream of whole-byte parts ([`whole_bytes`]): eight bytes a store, the parts' high
/// bytes zero, so each store's tail is the next part's place (overwritten by it); the last word's
/// padding is zeroed after, as the accumulator leaves it, whatever `out` held.
fn pack_bytes<R: Ring>(values: &[R], width: u32, size: usize, out: &mut [R], part: impl Fn(R) -> R) {
    let mask = width_mask(width);
    let stream: &mut [u8] = bytemuck::cast_slice_mut(out);
    for (i, &v) in values.iter().enumerate() {
        let bytes = (part(v).to_u64() & mask).to_le_bytes();
        let at = i * size;
        match stream.get_mut(at..at + 8) {
            Some(window) => window.copy_from_slice(&bytes),
            None => stream[at..at + size].copy_from_slice(&bytes[..size]),
        }
    }
    stream[values.len() * size..].fill(0);
}

/// The `i`-th whole-byte part of a packed stream ([`pack_bytes`]).
#[inline(always)]
fn read_bytes<R: Ring>(words: &[R], size: usize, i: usize) -> u64 {
    let stream: &[u8] = bytemuck::cast_slice(words);
    let at = i * size;
    let mut bytes = [0u8; 8];
    match stream.get(at..at + 8) {
        Some(window) => bytes.copy_from_slice(window),
        None => bytes[..size].copy_from_slice(&stream[at..at + size]),
    }
    u64::from_le_bytes(bytes) & width_mask(size as u32 * 8)
}

/// Adds the stream's parts ([`pack_stream`]) to `part(v)`, an accumulator refilled a word at a
/// time, each sum mod 2^width written back as `finish(sum)`.
fn add_stream<R: Ring>(words: &[R], width: u32, into: &mut [R], part: impl Fn(R) -> R, finish: impl Fn(R) -> R) {
    let (bits, mask) = (R::BITS, width_mask(width));
    let word_mask = width_mask(bits);
    let (mut acc, mut available, mut word) = (0u128, 0u32, 0usize);
    for v in into.iter_mut() {
        if available < width {
            acc |= u128::from(words[word].to_u64() & word_mask) << available;
            word += 1;
            available += bits;
        }
        let theirs = acc as u64 & mask;
        acc >>= width;
        available -= width;
        *v = finish(R::from_u64(part(*v).to_u64().wrapping_add(theirs) & mask));
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::ring;

    /// A deterministic stream of ring values (splitmix64).
    fn values<R: Ring>(seed: u64, n: usize) -> Vec<R> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                R::from_u64(z ^ (z >> 31))
            })
            .collect()
    }

    /// Every width and odd lengths: the packed words are exactly as many as [`packed_words`]
    /// says, and adding them to other values gives the sums mod 2^width, value by value.
    fn packs_and_adds<R: Ring>() {
        for width in 1..=R::BITS {
            for n in [0usize, 1, 2, 7, 63, 64, 65, 129] {
                let (a, b) = (values::<R>(u64::from(width) * 131 + n as u64, n), values::<R>(n as u64 + 7, n));
                let mut packed = vec![R::ZERO; packed_words::<R>(n, width)];
                pack_low_bits(&a, width, &mut packed);
                let mut sums = b.clone();
                add_packed_low_bits(&packed, width, &mut sums).expect("the right length");
                for i in 0..n {
                    assert_eq!(
                        sums[i],
                        ring::low_bits(a[i].wrapping_add(&b[i]), width),
                        "width {width}, n {n}, at {i}"
                    );
                }
                // The last word's bits past the values are zero: nothing but the values is sent.
                if let Some(&last) = packed.last() {
                    let used = (n as u64 * u64::from(width)) % u64::from(R::BITS);
                    if used > 0 {
                        assert_eq!(last.shr_logical(used as u32), R::ZERO);
                    }
                }
                let mut short = b.clone();
                short.push(R::ZERO);
                if packed_words::<R>(n + 1, width) != packed.len() {
                    assert_eq!(add_packed_low_bits(&packed, width, &mut short), Err(Error::ShapeMismatch));
                }
            }
        }
    }

    /// Whole-byte widths are written a byte window at a time on little-endian targets: the
    /// same stream, word for word, as the accumulator writes and reads.
    fn byte_windows_write_the_same_stream<R: Ring>() {
        for size in 1..=(R::BITS / 8) as usize {
            let width = size as u32 * 8;
            for n in [0usize, 1, 3, 8, 9, 100] {
                let v = values::<R>(n as u64 + u64::from(width), n);
                // The byte windows' buffer starts dirty: its padding must come out zero anyway.
                let (mut a, mut b) =
                    (vec![!R::ZERO; packed_words::<R>(n, width)], vec![R::ZERO; packed_words::<R>(n, width)]);
                pack_bytes(&v, width, size, &mut a, |x| x);
                pack_stream(&v, width, &mut b, |x| x);
                assert_eq!(a, b, "width {width}, n {n}");
                let mut read = vec![R::ZERO; n];
                add_stream(&a, width, &mut read, |x| x, |x| x);
                for (i, r) in read.iter().enumerate() {
                    assert_eq!(r.to_u64(), read_bytes(&a, size, i), "width {width}, n {n}, at {i}");
                }
            }
        }
    }

    /// Whole blocks go through the vector kernel where this CPU has it: the stream it writes is
    /// the scalar accumulator's, word for word (a party without the kernel reads it), and what
    /// it reads back from a scalar stream, with the parts and the finish applied, is the
    /// scalar reading's. Runs the scalar path against itself on other CPUs.
    fn vector_blocks_write_and_read_the_scalar_stream<R: Ring>() {
        let part = |v: R| v.wrapping_add(&R::from_u64(0x1234_5678_9abc_def1)).shr_logical(3);
        let finish = |v: R| v.shl(3);
        for width in 1..=R::BITS {
            for n in [64usize, 128, 200, 64 * 5 + 63] {
                let v = values::<R>(u64::from(width) * 7 + n as u64, n);
                let mut vector = values::<R>(99, packed_words::<R>(n, width));
                let mut scalar = vec![R::ZERO; packed_words::<R>(n, width)];
                pack_parts(&v, width, &mut vector, part);
                pack_stream(&v, width, &mut scalar, part);
                assert_eq!(vector, scalar, "width {width}, n {n}");
                let mine = values::<R>(n as u64 + 5, n);
                let (mut vector_sums, mut scalar_sums) = (mine.clone(), mine);
                add_packed_parts(&scalar, width, &mut vector_sums, part, finish).expect("the right length");
                add_stream(&scalar, width, &mut scalar_sums, part, finish);
                assert_eq!(vector_sums, scalar_sums, "width {width}, n {n}");
            }
        }
    }

    #[test]
    fn vector_blocks_write_and_read_the_scalar_stream_in_u64_and_u32() {
        vector_blocks_write_and_read_the_scalar_stream::<u64>();
        vector_blocks_write_and_read_the_scalar_stream::<u32>();
    }

    #[test]
    fn byte_windows_write_the_same_stream_in_u64_and_u32() {
        byte_windows_write_the_same_stream::<u64>();
        byte_windows_write_the_same_stream::<u32>();
    }

    #[test]
    fn packed_openings_add_value_by_value_in_u64() {
        packs_and_adds::<u64>();
    }

    #[test]
    fn packed_openings_add_value_by_value_in_u32() {
        packs_and_adds::<u32>();
    }
}
