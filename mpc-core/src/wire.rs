//! Wire format: raw little-endian ring elements, one message per peer per round.
//!
//! A message carries a known number of elements, so its length is fixed by the protocol and no
//! header is needed; a message of any other length is rejected by the transport.

use alloc::vec::Vec;

use crate::error::Error;
use crate::ring::{self, Ring};
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
/// `out` (zeroed, [`packed_words`] words long), a value at a time from a running bit position:
/// the message of an opening mod 2^width.
pub fn pack_low_bits<R: Ring>(values: &[R], width: u32, out: &mut [R]) {
    let bits = R::BITS;
    let (mut word, mut offset) = (0, 0);
    for &v in values {
        let v = ring::low_bits(v, width);
        out[word] = out[word] ^ v.shl(offset);
        offset += width;
        if offset >= bits {
            offset -= bits;
            word += 1;
            // The value's bits that crossed into the next word (none when it ended on the edge).
            if offset > 0 {
                out[word] = out[word] ^ v.shr_logical(width - offset);
            }
        }
    }
}

/// The `n` values of `width` bits packed in `words` ([`pack_low_bits`]), added to `into`
/// mod 2^width: the opening of the values whose other shares `into` holds.
pub fn add_packed_low_bits<R: Ring>(words: &[R], width: u32, into: &mut [R]) -> Result<(), Error> {
    if words.len() != packed_words::<R>(into.len(), width) {
        return Err(Error::ShapeMismatch);
    }
    let bits = R::BITS;
    let (mut word, mut offset) = (0, 0);
    for v in into.iter_mut() {
        let mut theirs = words[word].shr_logical(offset);
        offset += width;
        if offset >= bits {
            offset -= bits;
            word += 1;
            if offset > 0 {
                theirs = theirs ^ words[word].shl(width - offset);
            }
        }
        *v = ring::low_bits(v.wrapping_add(&theirs), width);
    }
    Ok(())
}
