//! Wire format: raw little-endian ring elements, one message per peer per round.
//!
//! A message carries a known number of elements, so its length is fixed by the protocol and no
//! header is needed; a message of any other length is rejected by the transport.

use alloc::vec::Vec;

use crate::error::Error;
use crate::ring::Ring;
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
