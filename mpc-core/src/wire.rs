//! Wire format: raw little-endian ring elements, one message per peer per round.
//!
//! A message carries a known number of elements, so its length is fixed by the protocol and no
//! header is needed; a message of any other length is rejected by the transport.

use alloc::vec::Vec;

use crate::error::Error;
use crate::ring::Ring;
use crate::share::Shares;
use crate::transport::{PartyId, Transport};

/// Sends the ring elements of `parts`, concatenated, as one message.
pub fn send<R: Ring, T: Transport>(transport: &mut T, to: PartyId, parts: &[&[R]]) -> Result<(), Error> {
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

/// [`pack_low_bits`] of `part(v)` for each value v, in one pass: a running accumulator of
/// twice the word's bits takes each part at its offset and gives out every full word.
pub(crate) fn pack_parts<R: Ring>(values: &[R], width: u32, out: &mut [R], part: impl Fn(R) -> R) {
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

/// [`add_packed_low_bits`] to `part(v)` for each value v of `into`, each sum mod 2^width then
/// written back as `finish(sum)`, in one pass.
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
    Ok(())
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

    #[test]
    fn packed_openings_add_value_by_value_in_u64() {
        packs_and_adds::<u64>();
    }

    #[test]
    fn packed_openings_add_value_by_value_in_u32() {
        packs_and_adds::<u32>();
    }
}
