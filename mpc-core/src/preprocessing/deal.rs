//! What each party draws for a request, and how the dealer corrects P0's part: written once,
//! used by the dealer, by each party's client and by the test double.
//!
//! Every material has *random parts* (a, b; r; A; B), which both parties draw from their own PRG,
//! and *correlated parts* (c = a⊙b; r²; r >> f and msb(r); C = A·B). P1 draws its correlated
//! parts from its PRG too; P0's are the correction the dealer computes and sends to P0 alone.

use alloc::vec::Vec;

use heapless::Vec as Parts2;

use super::{MaskId, Material, Request};
use crate::error::Error;
use crate::ring::{self, Ring};
use crate::share::{Prg, Shares};
use crate::transport::Role;

/// The default bound on the ring elements of one part of one request, 2^28 (2 GiB of u64):
/// far above any Transformer layer's need, and a bound on what a request can make anybody
/// allocate. The dealer's bound is configurable ([`Dealer::with_max_request_elements`]).
///
/// [`Dealer::with_max_request_elements`]: super::Dealer::with_max_request_elements
pub const MAX_REQUEST_ELEMENTS: usize = 1 << 28;

/// Bytes of an encoded request header.
pub(crate) const HEADER_LEN: usize = 40;

const TAG_BEAVER: u64 = 1;
const TAG_SQUARE: u64 = 2;
const TAG_TRUNC: u64 = 3;
const TAG_MASK: u64 = 4;
const TAG_TRIPLE: u64 = 5;

/// Part lengths of a request: (random parts, correlated parts).
pub(crate) struct Layout {
    pub random: Parts2<usize, 2>,
    pub correlated: Parts2<usize, 2>,
}

fn parts(lens: &[usize]) -> Parts2<usize, 2> {
    Parts2::from_slice(lens).expect("at most two parts")
}

impl Request {
    /// Checks that every part holds at most `max_elements` and the shift fits the ring.
    pub fn validate<R: Ring>(&self, max_elements: usize) -> Result<(), Error> {
        let ok = |x: Option<usize>| matches!(x, Some(v) if v <= max_elements);
        let fits = match *self {
            Request::Beaver { n } | Request::Square { n } => ok(Some(n)),
            Request::Trunc { n, frac_bits } => ok(Some(n)) && frac_bits + 2 < R::BITS,
            Request::MatmulMask { k, n } => ok(k.checked_mul(n)),
            Request::MatmulTriple { m, k, n, .. } => {
                ok(k.checked_mul(n)) && ok(m.checked_mul(k)) && ok(m.checked_mul(n))
            }
        };
        if fits { Ok(()) } else { Err(Error::TooLarge) }
    }

    /// Ring elements of P0's correction (what the dealer sends for this request).
    pub fn correction_len(&self) -> usize {
        self.layout().correlated.iter().sum()
    }

    pub(crate) fn layout(&self) -> Layout {
        match *self {
            Request::Beaver { n } => Layout { random: parts(&[n, n]), correlated: parts(&[n]) },
            Request::Square { n } => Layout { random: parts(&[n]), correlated: parts(&[n]) },
            Request::Trunc { n, .. } => Layout { random: parts(&[n]), correlated: parts(&[n, n]) },
            Request::MatmulMask { k, n } => Layout { random: parts(&[k * n]), correlated: parts(&[]) },
            Request::MatmulTriple { m, k, n, .. } => Layout { random: parts(&[m * k]), correlated: parts(&[m * n]) },
        }
    }

    /// The fixed-length header P0 sends to the dealer: five little-endian u64 words.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let words: [u64; 5] = match *self {
            Request::Beaver { n } => [TAG_BEAVER, n as u64, 0, 0, 0],
            Request::Square { n } => [TAG_SQUARE, n as u64, 0, 0, 0],
            Request::Trunc { n, frac_bits } => [TAG_TRUNC, n as u64, frac_bits as u64, 0, 0],
            Request::MatmulMask { k, n } => [TAG_MASK, k as u64, n as u64, 0, 0],
            Request::MatmulTriple { m, k, n, mask } => [TAG_TRIPLE, m as u64, k as u64, n as u64, mask],
        };
        let mut out = [0u8; HEADER_LEN];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decodes and validates a header received from a peer, with parts of at most `max_elements`.
    pub fn decode<R: Ring>(bytes: &[u8], max_elements: usize) -> Result<Request, Error> {
        if bytes.len() != HEADER_LEN {
            return Err(Error::Malformed("request header length"));
        }
        let mut w = [0u64; 5];
        for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        let size = |x: u64| usize::try_from(x).map_err(|_| Error::TooLarge);
        let unused_zero = |ws: &[u64]| ws.iter().all(|&x| x == 0);
        let req = match w[0] {
            TAG_BEAVER if unused_zero(&w[2..]) => Request::Beaver { n: size(w[1])? },
            TAG_SQUARE if unused_zero(&w[2..]) => Request::Square { n: size(w[1])? },
            TAG_TRUNC if unused_zero(&w[3..]) => Request::Trunc {
                n: size(w[1])?,
                frac_bits: u32::try_from(w[2]).map_err(|_| Error::Malformed("truncation shift"))?,
            },
            TAG_MASK if unused_zero(&w[3..]) => Request::MatmulMask { k: size(w[1])?, n: size(w[2])? },
            TAG_TRIPLE => Request::MatmulTriple { m: size(w[1])?, k: size(w[2])?, n: size(w[3])?, mask: w[4] },
            _ => return Err(Error::Malformed("request header")),
        };
        req.validate::<R>(max_elements)?;
        Ok(req)
    }
}

/// One party's parts of a material, before they are given their typed shape.
pub(crate) struct Parts<R: Ring> {
    pub random: Parts2<Shares<R>, 2>,
    pub correlated: Parts2<Shares<R>, 2>,
}

fn uniform<R: Ring>(prg: &mut Prg, n: usize) -> Shares<R> {
    let mut s = Shares::zeros(n);
    ring::fill_uniform(prg, &mut s);
    s
}

/// Draws `role`'s parts of `request` from its PRG. P0's correlated parts are left at zero, for
/// the dealer's correction to fill.
pub(crate) fn draw<R: Ring>(role: Role, request: &Request, prg: &mut Prg) -> Parts<R> {
    let layout = request.layout();
    let mut out = Parts { random: Parts2::new(), correlated: Parts2::new() };
    for &len in &layout.random {
        let _ = out.random.push(uniform(prg, len));
    }
    for &len in &layout.correlated {
        let part = match role {
            Role::P1 => uniform(prg, len),
            Role::P0 => Shares::zeros(len),
        };
        let _ = out.correlated.push(part);
    }
    out
}

/// Fills P0's correlated parts from a flat correction vector.
pub(crate) fn apply_correction<R: Ring>(parts: &mut Parts<R>, correction: &[R]) -> Result<(), Error> {
    let total: usize = parts.correlated.iter().map(|p| p.len()).sum();
    if correction.len() != total {
        return Err(Error::MaterialMismatch);
    }
    let mut offset = 0;
    for part in parts.correlated.iter_mut() {
        let len = part.len();
        part.copy_from_slice(&correction[offset..offset + len]);
        offset += len;
    }
    Ok(())
}

fn next<T>(it: &mut impl Iterator<Item = T>) -> T {
    it.next().expect("part present by layout")
}

/// Gives parts their typed shape. `mask_id` is the identity a new matmul mask receives.
pub(crate) fn into_material<R: Ring>(request: &Request, parts: Parts<R>, mask_id: MaskId) -> Material<R> {
    let Parts { random, correlated } = parts;
    let mut random = random.into_iter();
    let mut correlated = correlated.into_iter();
    match *request {
        Request::Beaver { .. } => Material::Beaver(super::BeaverTriples {
            a: next(&mut random),
            b: next(&mut random),
            c: next(&mut correlated),
        }),
        Request::Square { .. } => {
            Material::Square(super::SquarePairs { r: next(&mut random), r2: next(&mut correlated) })
        }
        Request::Trunc { frac_bits, .. } => Material::Trunc(super::TruncPairs {
            r: next(&mut random),
            r_hi: next(&mut correlated),
            r_msb: next(&mut correlated),
            frac_bits,
        }),
        Request::MatmulMask { k, n } => {
            Material::MatmulMask(super::MatmulMask { id: mask_id, k, n, b: next(&mut random) })
        }
        Request::MatmulTriple { m, mask, .. } => {
            Material::MatmulTriple(super::MatmulTriple { mask, m, a: next(&mut random), c: next(&mut correlated) })
        }
    }
}

/// The dealer's view: both parties' PRGs, and every matmul mask B in the clear.
pub(crate) struct DealerState<R: Ring> {
    prgs: [Prg; 2],
    masks: Vec<(usize, usize, Shares<R>)>,
}

impl<R: Ring> DealerState<R> {
    pub fn new(prg_p0: Prg, prg_p1: Prg) -> Self {
        Self { prgs: [prg_p0, prg_p1], masks: Vec::new() }
    }

    /// Deals `request`: advances both PRGs exactly as the parties do and returns P0's complete
    /// parts (P1's are what P1 draws itself).
    /// The request must have been validated.
    pub fn deal(&mut self, request: &Request) -> Result<Parts<R>, Error> {
        if let Request::MatmulTriple { k, n, mask, .. } = *request {
            match self.masks.get(mask as usize) {
                Some((mk, mn, _)) if (*mk, *mn) == (k, n) => {}
                _ => return Err(Error::MaterialMismatch),
            }
        }
        let [prg0, prg1] = &mut self.prgs;
        let mut p0 = draw::<R>(Role::P0, request, prg0);
        let p1 = draw::<R>(Role::P1, request, prg1);
        let secret: Parts2<Shares<R>, 2> = p0.random.iter().zip(p1.random.iter()).map(|(x, y)| x.add(y)).collect();
        match *request {
            Request::Beaver { .. } => {
                let c: Vec<R> = secret[0].iter().zip(secret[1].iter()).map(|(a, b)| a.wrapping_mul(b)).collect();
                p0.correlated[0] = Shares::from_vec(c);
            }
            Request::Square { .. } => {
                p0.correlated[0] = Shares::from_vec(secret[0].iter().map(|r| r.wrapping_mul(r)).collect());
            }
            Request::Trunc { frac_bits, .. } => {
                p0.correlated[0] = Shares::from_vec(secret[0].iter().map(|r| r.shr_logical(frac_bits)).collect());
                p0.correlated[1] = Shares::from_vec(secret[0].iter().map(|r| r.msb()).collect());
            }
            Request::MatmulMask { k, n } => {
                let mut secret = secret;
                let b = secret.pop().expect("mask part");
                self.masks.push((k, n, b));
            }
            Request::MatmulTriple { m, k, n, mask } => {
                let b = &self.masks[mask as usize].2;
                let mut c = Shares::zeros(m * n);
                R::gemm_acc(m, k, n, &secret[0], b, &mut c);
                p0.correlated[0] = c;
            }
        }
        // P0's correlated share = secret - P1's share.
        for (mine, theirs) in p0.correlated.iter_mut().zip(p1.correlated.iter()) {
            ring::sub_assign(mine, theirs);
        }
        Ok(p0)
    }
}
