//! A [`Store`] as bytes: material made in advance (on a bigger machine, or before a device ships)
//! and read back where it is consumed, the constrained setting's preprocessing.
//!
//! Format (little-endian): `MPCSTOR1`, the ring's bits (u32), the entry count (u64), then per
//! entry the request's 40-byte header, the mask identity (u64), the absorbed flag (u8), and each
//! part of the request's layout (random parts, then correlated ones) as a length (u64) and that
//! many ring elements. Reading checks every length against the request before allocating.

use alloc::vec::Vec;

use heapless::Vec as Parts2;
use zeroize::Zeroizing;

use super::deal::{self, HEADER_LEN, MAX_PARTS, Parts, Sharing};
use super::{MaskId, Material, Request, Store};
use crate::error::Error;
use crate::ring::Ring;
use crate::share::Shares;

const MAGIC: &[u8; 8] = b"MPCSTOR1";

/// The parts of `material` in the order [`deal::into_material`] consumes them, its mask identity
/// and whether its product was absorbed.
fn parts_of<R: Ring>(material: &Material<R>) -> (Vec<&[R]>, Vec<&[R]>, MaskId, bool) {
    match material {
        Material::Beaver(t) | Material::Broadcast(t) => {
            (alloc::vec![&t.a[..], &t.b[..]], alloc::vec![&t.c[..]], 0, false)
        }
        Material::And(t) => (alloc::vec![&t.a[..], &t.b[..]], alloc::vec![&t.c[..]], 0, false),
        Material::Square(p) => (alloc::vec![&p.r[..]], alloc::vec![&p.r2[..]], 0, false),
        Material::Trunc(p) => (alloc::vec![&p.r[..]], alloc::vec![&p.r_hi[..], &p.r_msb[..]], 0, false),
        Material::TruncSquare(p) => (
            alloc::vec![&p.trunc.r[..]],
            alloc::vec![&p.trunc.r_hi[..], &p.trunc.r_msb[..], &p.r_hi_sq[..], &p.msb_r_hi[..]],
            0,
            false,
        ),
        Material::MatmulMask(m) | Material::OwnedMask(m) => (alloc::vec![&m.b[..]], alloc::vec![], m.id, false),
        Material::OwnedTable(m, key) => (alloc::vec![&key[..], &m.b[..]], alloc::vec![], m.id, false),
        Material::MatmulTriple(t) | Material::OwnedTriple(t) => {
            (alloc::vec![&t.a[..]], alloc::vec![&t.c[..]], 0, t.absorbed)
        }
        Material::Below(b) => {
            let mut random = alloc::vec![&b.r[..]];
            random.extend(b.u.iter().map(|u| &u[..]));
            let mut correlated = alloc::vec![&b.tables[..]];
            correlated.extend(b.arith.iter().map(|a| &a[..]));
            if b.times.is_some() {
                correlated.extend([&b.value_trunc[..], &b.cross[..]]);
            }
            if !b.square.is_empty() {
                correlated.push(&b.square[..]);
            }
            (random, correlated, 0, false)
        }
        Material::OwnedLookup(l) => {
            (alloc::vec![&l.a[..], &l.route[..], &l.r0[..]], alloc::vec![&l.c[..], &l.c_route[..]], 0, false)
        }
        Material::Fused(f) => {
            let truncs = f.x_trunc.iter().chain(&f.y_trunc).filter(|t| !t.is_empty());
            let correlated = truncs.chain(&f.cross).map(|t| &t[..]).collect();
            // A square has no y (its layout no second random part).
            let random = core::iter::once(&f.x_mask).chain((!f.y_mask.is_empty()).then_some(&f.y_mask));
            (random.map(|m| &m[..]).collect(), correlated, 0, false)
        }
    }
}

/// A bounds-checked reader over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.bytes.len() {
            return Err(Error::Malformed("stored material ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("eight bytes")))
    }
}

impl<R: Ring> Store<R> {
    /// The store's unconsumed material as bytes (secret: zeroized when dropped).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&R::BITS.to_le_bytes());
        out.extend_from_slice(&(self.queue.len() as u64).to_le_bytes());
        for (request, material) in &self.queue {
            let (random, correlated, id, absorbed) = parts_of(material);
            out.extend_from_slice(&request.encode());
            out.extend_from_slice(&id.to_le_bytes());
            out.push(u8::from(absorbed));
            for part in random.iter().chain(&correlated) {
                out.extend_from_slice(&(part.len() as u64).to_le_bytes());
                for x in part.iter() {
                    out.extend_from_slice(&bytemuck::bytes_of(&x.native_to_le())[..R::BYTES]);
                }
            }
        }
        out
    }

    /// Reads material written by [`Store::to_bytes`], refusing anything malformed: a wrong ring,
    /// a request above `max_elements` per part, a part whose length does not fit its request, a
    /// truncated or over-long input.
    pub fn from_bytes(bytes: &[u8], max_elements: usize) -> Result<Self, Error> {
        let mut r = Reader { bytes };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(Error::Malformed("not stored material"));
        }
        if r.take(4)? != R::BITS.to_le_bytes() {
            return Err(Error::Malformed("stored material of another ring"));
        }
        let count = r.u64()?;
        let mut store = Store::new();
        for _ in 0..count {
            let header = r.take(HEADER_LEN)?;
            let request = Request::decode::<R>(header, max_elements)?;
            // The format is canonical: a header the dealer would read the same way but that
            // does not write back as it was (a width-less one, read as the ring's) is not ours.
            if request.encode()[..] != *header {
                return Err(Error::Malformed("stored header not canonical"));
            }
            let id = r.u64()?;
            let absorbed = match r.take(1)?[0] {
                0 => false,
                1 => true,
                _ => return Err(Error::Malformed("stored absorbed flag")),
            };
            // Only masks have identities and only triples absorb: anything else is not ours.
            let is_mask = request.is_mask();
            let is_triple = matches!(request, Request::MatmulTriple { .. } | Request::OwnedTriple { .. });
            if (id != 0 && !is_mask) || (absorbed && !is_triple) {
                return Err(Error::Malformed("stored identity or flag on the wrong material"));
            }
            let layout = request.layout::<R>();
            let mut read_parts = |shapes: &[(usize, Sharing)]| -> Result<Parts2<Shares<R>, MAX_PARTS>, Error> {
                let mut parts = Parts2::new();
                for &(len, sharing) in shapes {
                    let stored = r.u64()?;
                    // A part one party owns is empty at the other.
                    let fits = stored == len as u64 || (stored == 0 && matches!(sharing, Sharing::Owned(_)));
                    if !fits {
                        return Err(Error::Malformed("stored part of the wrong length"));
                    }
                    let bytes = usize::try_from(stored).ok().and_then(|n| n.checked_mul(R::BYTES));
                    let raw = r.take(bytes.ok_or(Error::TooLarge)?)?;
                    let values = raw
                        .chunks_exact(R::BYTES)
                        .map(|b| bytemuck::pod_read_unaligned::<R>(b).le_to_native())
                        .collect();
                    parts.push(Shares::from_vec(values)).map_err(|_| Error::Malformed("too many parts"))?;
                }
                Ok(parts)
            };
            let random = read_parts(&layout.random)?;
            let correlated = read_parts(&layout.correlated)?;
            let mut material = deal::into_material(&request, Parts { random, correlated }, id);
            if let Material::MatmulTriple(t) | Material::OwnedTriple(t) = &mut material {
                t.absorbed = absorbed;
            }
            store.queue.push_back((request, material));
        }
        if !r.bytes.is_empty() {
            return Err(Error::Malformed("bytes after the stored material"));
        }
        Ok(store)
    }
}
