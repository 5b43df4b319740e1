//! Correlated randomness: what the protocols consume, who makes it, and how it is stored.
//!
//! The **offline phase** makes [`Material`] for a list of [`Request`]s; the **online phase**
//! consumes it. Providers implement [`Preprocessing`]:
//! - [`DealerClient`]: a party's side of the seeded trusted dealer (CrypTen's TTP). The dealer
//!   shares a ChaCha seed with each party; each party derives its shares locally, and only P0
//!   receives a correction message per batch, so P1 never talks to the dealer after setup;
//! - [`Store`]: material made ahead of time and consumed later, in order;
//! - [`TestDealer`]: an insecure local double that needs no dealer, for tests and simulation.
//!
//! The dealer's side is [`Dealer`]. Which values are drawn and how the dealer corrects them is
//! written once, in the `deal` module, for all of them.

pub(crate) mod deal;
mod dealer;
mod recycle;
mod store;
mod stored;
mod test_dealer;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;

use crate::error::Error;
use crate::ring::Ring;
use crate::share::Shares;

pub use deal::MAX_REQUEST_ELEMENTS;
pub use dealer::{DEFAULT_MAX_HELD_ELEMENTS, DEFAULT_RECYCLED, Dealer, DealerClient, DealerStats};
pub use store::{Clock, DEFAULT_BUDGET, DEFAULT_CHUNK, FinishedRun, Pipeline, PipelineStats, Plan, Store};
pub use test_dealer::TestDealer;

/// Identifies a matmul mask (the reusable B side of matmul triples) within a session.
pub type MaskId = u64;

/// A request for correlated randomness. Sizes are public: both parties and the dealer know them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// `n` elementwise Beaver triples (a, b, c = a ⊙ b).
    Beaver {
        /// Number of triples.
        n: usize,
    },
    /// `n` square pairs (r, r²).
    Square {
        /// Number of pairs.
        n: usize,
    },
    /// `n` truncation pairs (r, r >> f, msb(r)) for `frac_bits` = f.
    Trunc {
        /// Number of pairs.
        n: usize,
        /// Bits to shift away.
        frac_bits: u32,
    },
    /// `n` truncation pairs that also square the truncated value locally: the pairs of
    /// [`Request::Trunc`] plus (r >> f)² and msb(r) · (r >> f) (see [`TruncSquarePairs`]).
    TruncSquare {
        /// Number of pairs.
        n: usize,
        /// Bits to shift away.
        frac_bits: u32,
    },
    /// A `k × n` matmul mask B, reusable by any number of matmul triples.
    MatmulMask {
        /// Rows of B.
        k: usize,
        /// Columns of B.
        n: usize,
    },
    /// A matmul triple (A, C = A · B) for the mask `mask` of shape `k × n`, with A of shape `m × k`.
    MatmulTriple {
        /// Rows of A.
        m: usize,
        /// Rows of B (columns of A).
        k: usize,
        /// Columns of B.
        n: usize,
        /// The mask B.
        mask: MaskId,
    },
    /// A `k × n` mask B known to P0 alone, for products with P0's own weights.
    OwnedMask {
        /// Rows of B.
        k: usize,
        /// Columns of B.
        n: usize,
    },
    /// A triple for an owned mask: A (`m × k`) known to P1 alone, C = A · B shared.
    OwnedTriple {
        /// Rows of A.
        m: usize,
        /// Rows of B (columns of A).
        k: usize,
        /// Columns of B.
        n: usize,
        /// The owned mask B.
        mask: MaskId,
    },
    /// A `k × n` mask B known to P0 alone, for a table of P0's read by rows (an embedding): as
    /// [`Request::OwnedMask`], kept by the dealer as rows for [`Request::OwnedLookup`].
    OwnedTable {
        /// Rows of B.
        k: usize,
        /// Columns of B.
        n: usize,
    },
    /// Material for `m` rows of an owned table (`k × n`, its mask `mask`) at P1's secret
    /// indices, batched by hashing into bins (see [`OwnedLookup`]).
    OwnedLookup {
        /// Rows looked up.
        m: usize,
        /// Rows of the table.
        k: usize,
        /// Columns of the table.
        n: usize,
        /// The table's mask B ([`Request::OwnedTable`]).
        mask: MaskId,
    },
    /// Triples for products of a `rows × len` matrix with a vector repeated along one axis:
    /// a (rows × len), b (`rows` values if `per_row`, else `len`), c = a ⊙ broadcast(b).
    Broadcast {
        /// Rows of the matrix.
        rows: usize,
        /// Columns of the matrix.
        len: usize,
        /// Whether b holds one value per row (else one per column).
        per_row: bool,
    },
    /// AND triples on `words` ring words of packed bits (a, b, c = a & b, XOR-shared).
    And {
        /// Ring words of packed bits.
        words: usize,
    },
    /// Material for comparing each of `n` values with `bounds` public bounds, one mask per value
    /// (see [`BelowMaterial`]; the bound count sets the width of its digits).
    Below {
        /// Number of values.
        n: usize,
        /// Number of bounds each value is compared with.
        bounds: usize,
        /// `Some(s)`: also every comparison's bit times its value shifted right by s (the
        /// products read off the same rounds).
        times: Option<u32>,
        /// With `times: Some(0)`: also each value's square, read off the same opening (the
        /// dealer's r² per value); the products are then those of the last bound only (a
        /// saturating function's top asymptote).
        square: bool,
        /// The comparisons' width m ≤ k: the opening is c mod 2^m, valid for values within
        /// 2^(m-2) of each bound; the ring's own width for all of it.
        width: u32,
    },
    /// Material for products of operands that are truncated first, each opening serving both
    /// (see [`FusedMaterial`]): x has `rows × len` elements; y as many, or one per row or per
    /// column (`broadcast`, as in [`Request::Broadcast`]).
    Fused {
        /// Rows of x.
        rows: usize,
        /// Columns of x.
        len: usize,
        /// `None`: y is x's shape; `Some(per_row)`: y holds one value per row (or per column).
        broadcast: Option<bool>,
        /// Bits x is shifted right by before the product (0: not truncated).
        x_shift: u32,
        /// Bits y is shifted right by before the product (0: not truncated).
        y_shift: u32,
        /// Whether x's square (x >> x_shift)² comes out of the same opening too: its cross
        /// products follow the product's (x's opening then serves two products).
        with_square: bool,
        /// Whether y's square (y >> y_shift)² comes out of the same opening too (y's length,
        /// after the product's cross products); not together with `with_square`.
        y_square: bool,
        /// x's opening width m ≤ k: x + 2^(m-2) + r mod 2^m, for |x| < 2^(m-2) (a dealer
        /// truncation at width m, shifted by `x_shift` or not); the ring's own width for all
        /// of it. A narrow x times a truncated y needs one more cross product, msb·msb.
        x_width: u32,
        /// y's opening width, as x's (a narrow y with a truncated x also needs msb·msb).
        y_width: u32,
    },
    /// Material for squares (x >> shift)² whose one opening serves the truncation and the
    /// square (see [`FusedMaterial`]): half the opening and about half the material of a
    /// [`Request::Fused`] product of x with itself.
    FusedSquare {
        /// Elements of x.
        n: usize,
        /// Bits x is shifted right by before the square (0: not truncated).
        shift: u32,
        /// The opening's width m ≤ k: x + 2^(m-2) + r mod 2^m, for |x| < 2^(m-2) (a dealer
        /// truncation at width m, by `shift` bits or none); the ring's own width for all of it.
        width: u32,
    },
}

/// One party's shares of `n` Beaver triples.
#[derive(Clone, Debug)]
pub struct BeaverTriples<R: Ring> {
    /// Shares of a.
    pub a: Shares<R>,
    /// Shares of b.
    pub b: Shares<R>,
    /// Shares of c = a ⊙ b.
    pub c: Shares<R>,
}

/// One party's shares of `n` square pairs.
#[derive(Clone, Debug)]
pub struct SquarePairs<R: Ring> {
    /// Shares of r.
    pub r: Shares<R>,
    /// Shares of r².
    pub r2: Shares<R>,
}

/// One party's shares of `n` truncation pairs.
#[derive(Clone, Debug)]
pub struct TruncPairs<R: Ring> {
    /// Shares of a uniform r.
    pub r: Shares<R>,
    /// Shares of r >> f (logical shift).
    pub r_hi: Shares<R>,
    /// Shares of the most significant bit of r, as a ring element 0 or 1.
    pub r_msb: Shares<R>,
    /// The shift f.
    pub frac_bits: u32,
}

/// One party's shares of `n` truncation pairs with the products that square the result.
///
/// After the truncation's opening c, the result is y = p + q·msb(r) - (r >> f) with p and q
/// public (see [`Party::truncate_square_many`](crate::Party::truncate_square_many)), so that
/// (y + a)² for a public a is linear in these shares: q² vanishes in the ring when f <= k/2.
#[derive(Clone, Debug)]
pub struct TruncSquarePairs<R: Ring> {
    /// The truncation pairs.
    pub trunc: TruncPairs<R>,
    /// Shares of (r >> f)².
    pub r_hi_sq: Shares<R>,
    /// Shares of msb(r) · (r >> f).
    pub msb_r_hi: Shares<R>,
}

/// One party's share of a matmul mask B (`k × n`, row-major).
#[derive(Clone, Debug)]
pub struct MatmulMask<R: Ring> {
    /// The mask's identity within the session.
    pub id: MaskId,
    /// Rows.
    pub k: usize,
    /// Columns.
    pub n: usize,
    /// Shares of B.
    pub b: Shares<R>,
}

/// One party's shares of a matmul triple for a mask B: A (`m × k`) and C = A · B (`m × n`).
#[derive(Clone, Debug)]
pub struct MatmulTriple<R: Ring> {
    /// The mask this triple belongs to.
    pub mask: MaskId,
    /// Rows of A.
    pub m: usize,
    /// Shares of A.
    pub a: Shares<R>,
    /// Shares of C.
    pub c: Shares<R>,
    /// Whether C already holds A · F, the product with the opened weight mask that needs no
    /// input (computed in the offline phase by [`absorb`](crate::protocol::absorb)).
    pub absorbed: bool,
}

/// One party's material for `m` rows of P0's table W (`k × n`) at P1's indices, batched
/// ([`Party::lookup_owned`](crate::Party::lookup_owned)).
///
/// The table's key ([`Request::OwnedTable`]) hashes its rows into
/// [`lookup_bins`](crate::protocol::lookup_bins) bins;
/// each bin has [`LOOKUP_SLOTS`](crate::protocol::LOOKUP_SLOTS) slots, each reading one row of
/// its bin by a masked one-hot over the bin's rows. P1's masks `a` (a slot's one-hot over its
/// bin, the bins in order) and C = a · B per slot (shared) make the slots' rows shares of W's
/// rows as an owned product does. A route from the slots to the `m` positions (P1's one-hot
/// rows, masked by A') then moves them: P0 turns its share of the slots into P1's plus its
/// random R0, and A' · R0 (shared) makes the route's product with R0 linear.
#[derive(Clone, Debug)]
pub struct OwnedLookup<R: Ring> {
    /// The table's mask.
    pub mask: MaskId,
    /// Rows looked up.
    pub m: usize,
    /// P1: the slots' masks (`LOOKUP_SLOTS · k`); empty at P0.
    pub a: Shares<R>,
    /// P1: the route's mask A' (`m × slots`); empty at P0.
    pub route: Shares<R>,
    /// P0: its random share of the slots' rows R0 (`slots × n`); empty at P1.
    pub r0: Shares<R>,
    /// Shares of C = a · B per slot (`slots × n`).
    pub c: Shares<R>,
    /// Shares of A' · R0 (`m × n`).
    pub c_route: Shares<R>,
}

impl<R: Ring> OwnedLookup<R> {
    /// Its buffers, for [`Preprocessing::recycle`] once used.
    pub(crate) fn into_shares(self) -> impl Iterator<Item = Shares<R>> {
        let Self { a, route, r0, c, c_route, .. } = self;
        [a, route, r0, c, c_route].into_iter()
    }
}

/// One party's XOR shares of AND triples on packed bits.
#[derive(Clone, Debug)]
pub struct AndTriples<R: Ring> {
    /// Shares of a.
    pub a: Shares<R>,
    /// Shares of b.
    pub b: Shares<R>,
    /// Shares of c = a & b.
    pub c: Shares<R>,
}

/// One party's material for comparing `n` values with `bounds` public bounds each.
///
/// One uniform mask r per value hides it in the opening c = x + 2^(m-2) + r mod 2^m, for the
/// request's width m (the ring's k bits, or fewer for values known to lie within 2^(m-2) of
/// every bound: a narrower opening and fewer digits); write ρ = r mod 2^m. Every bound t reads
/// its comparison off c - t. The dealer hands out, per value, XOR-shared tables of the w-bit
/// digits of ρ mod 2^(m-2) (`[v < digit]` and `[v == digit]`, 2^w entries each; w is 4 for
/// fewer than 16 bounds, 8 from there: one value against many bounds saves a round and half
/// the gates of each comparison for tables eight times as big), built so that the last level
/// of the comparison tree and the conversion to arithmetic shares take one round together (see
/// [`Party::below`](crate::Party::below)): in the upper half of the digits the tables say
/// `[v > digit]` when bit m-2 of ρ is set, and the lower half's top digit has that bit XORed
/// into its `[v < digit]` table. The last round injects three bits per comparison into the
/// ring, with dealer bits u1, u2, u3 and arithmetic shares of u1, u2, u3 and u2·u3. Each bit is
/// then public + a linear form in those four (U_k); with `times`, the value x >> s is public +
/// w·msb(ρ) - (ρ >> s) off the same opening (a dealer truncation at width m), and the dealer's
/// U_k·msb(ρ) and U_k·(ρ >> s) make bit · (x >> s) linear too.
#[derive(Clone, Debug)]
pub struct BelowMaterial<R: Ring> {
    /// Number of values.
    pub n: usize,
    /// Bounds per value.
    pub bounds: usize,
    /// The comparisons' width m (see [`Request::Below`]): only r mod 2^m meets the opening.
    pub width: u32,
    /// Additive shares of the masks r (one per value).
    pub r: Shares<R>,
    /// XOR shares of the packed bits u1, u2, u3 (one each per comparison).
    pub u: [Shares<R>; 3],
    /// XOR shares of each value's digit tables.
    pub tables: Shares<R>,
    /// Additive shares of u1, u2, u3 and u2·u3 as ring elements 0/1, per comparison.
    pub arith: [Shares<R>; 4],
    /// The shift of the products (see [`Request::Below`]).
    pub times: Option<u32>,
    /// With a shift s > 0 or a width m below the ring's: shares of ρ >> s for ρ = r mod 2^m,
    /// then of msb(ρ) (bit m - 1), per value (2n); else empty (an unshifted full-width value is
    /// c - r itself).
    pub value_trunc: Shares<R>,
    /// With `times`: shares of U_k·msb(ρ) then U_k·(ρ >> s) for k = 1..4, each per comparison
    /// with a product (all n · bounds, or the last bound's n with `square`): 8 a comparison;
    /// without a shift at full width only U_k·r (4 a comparison); else empty.
    pub cross: Shares<R>,
    /// With [`Request::Below`]'s `square`: shares of ρ² per value (x² = c'² - 2c'·r + r² for
    /// the public c' = c - 2^(k-2)), then at a width m below the ring's of ρ·msb(ρ) (x = c' - ρ
    /// + 2^m·w·msb(ρ) for the public wrap factor w); else empty.
    pub square: Shares<R>,
}

impl<R: Ring> BelowMaterial<R> {
    /// Its buffers, for [`Preprocessing::recycle`] once used.
    pub(crate) fn into_shares(self) -> impl Iterator<Item = Shares<R>> {
        let Self { r, u, tables, arith, value_trunc, cross, square, .. } = self;
        [r, tables, value_trunc, cross, square].into_iter().chain(u).chain(arith)
    }
}

/// One party's material for products (x >> s_x) · (y >> s_y) of operands truncated first.
///
/// An operand with no shift is masked as in a Beaver product (x = d + a, d opened); a truncated
/// one is opened as in a dealer truncation (c = x + 2^(k-2) + r), after which x >> s =
/// p + w·msb(r) - (r >> s) with p and w public. Either way the operand is public plus a linear
/// form in the dealer's values, so the product needs, besides those, only the dealer's shares
/// of the cross products: a·b, a·msb(r), a·(r >> s), and for two truncated operands
/// msb(r)·(r' >> s'), (r >> s)·msb(r') and (r >> s)·(r' >> s') (the msb·msb term carries the
/// factor 2^(2k - s - s'), which vanishes for s + s' <= k).
///
/// A square ([`Request::FusedSquare`]) has one operand: y's masks are empty, and its cross
/// products are a·a, or msb(r)·(r >> s) and (r >> s)² for a truncated x.
#[derive(Clone, Debug)]
pub struct FusedMaterial<R: Ring> {
    /// Shares of x's masks (a, or r when x is truncated).
    pub x_mask: Shares<R>,
    /// Shares of y's masks (empty for a square).
    pub y_mask: Shares<R>,
    /// When x is truncated: shares of r >> s and msb(r); else empty.
    pub x_trunc: [Shares<R>; 2],
    /// When y is truncated: shares of r' >> s' and msb(r'); else empty.
    pub y_trunc: [Shares<R>; 2],
    /// Shares of the cross products (x's shape), in the order of [`FusedMaterial`]'s doc; for a
    /// product that also squares x, then the square's.
    pub cross: Vec<Shares<R>>,
}

impl<R: Ring> FusedMaterial<R> {
    /// Its buffers, for [`Preprocessing::recycle`] once used.
    pub(crate) fn into_shares(self) -> impl Iterator<Item = Shares<R>> {
        let Self { x_mask, y_mask, x_trunc, y_trunc, cross } = self;
        [x_mask, y_mask].into_iter().chain(x_trunc).chain(y_trunc).chain(cross)
    }
}

/// Correlated randomness for one [`Request`], as held by one party.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Material<R: Ring> {
    /// Answer to [`Request::Beaver`].
    Beaver(BeaverTriples<R>),
    /// Answer to [`Request::Square`].
    Square(SquarePairs<R>),
    /// Answer to [`Request::Trunc`].
    Trunc(TruncPairs<R>),
    /// Answer to [`Request::TruncSquare`].
    TruncSquare(TruncSquarePairs<R>),
    /// Answer to [`Request::MatmulMask`].
    MatmulMask(MatmulMask<R>),
    /// Answer to [`Request::MatmulTriple`].
    MatmulTriple(MatmulTriple<R>),
    /// Answer to [`Request::OwnedMask`]: B at P0, empty at P1.
    OwnedMask(MatmulMask<R>),
    /// Answer to [`Request::OwnedTriple`]: A at P1 (empty at P0), shares of C at both.
    OwnedTriple(MatmulTriple<R>),
    /// Answer to [`Request::Broadcast`] (b holds the short vector).
    Broadcast(BeaverTriples<R>),
    /// Answer to [`Request::And`].
    And(AndTriples<R>),
    /// Answer to [`Request::Below`].
    Below(BelowMaterial<R>),
    /// Answer to [`Request::Fused`].
    Fused(FusedMaterial<R>),
    /// Answer to [`Request::OwnedTable`]: B and the key of its rows' buckets (one value) at
    /// P0, both empty at P1.
    OwnedTable(MatmulMask<R>, Shares<R>),
    /// Answer to [`Request::OwnedLookup`].
    OwnedLookup(OwnedLookup<R>),
}

/// A source of correlated randomness for one party.
///
/// Requests must be made in the same order at both parties (the programs are public).
pub trait Preprocessing<R: Ring> {
    /// The material for `request`.
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error>;

    /// Material for several requests, in order. Providers that talk to a dealer answer a whole
    /// batch in one round trip.
    fn materials(&mut self, requests: &[Request]) -> Result<Vec<Material<R>>, Error> {
        requests.iter().map(|r| self.material(r)).collect()
    }

    /// Told the opened mask F = W - B of a loaded weight (public to this party), so that a
    /// provider making material ahead can fold the input-free product A · F into that mask's
    /// triples ([`MatmulTriple::absorbed`]). Providers that make nothing ahead ignore it.
    fn opened_mask(&mut self, _mask: MaskId, _f: alloc::sync::Arc<crate::gemm::RightOperand<R>>) {}

    /// Whether material was made on demand, while a program ran, since the last call. Both
    /// parties' pipelines refill at the same request (same plan, budget and chunk), and the
    /// party then meets its peer before going on ([`Preprocessing::refill_met`]), so that
    /// neither party's online clock counts the other's refill as waiting.
    fn refilled(&mut self) -> bool {
        false
    }

    /// The meeting after a refill is over (a pipeline's refill time ends here).
    fn refill_met(&mut self) {}

    /// Takes back a buffer of used material (its values no longer needed): a provider that
    /// draws material may draw later material over it rather than wipe it and fault in fresh
    /// pages. The default drops it, which wipes it.
    fn recycle(&mut self, _used: Shares<R>) {}

    /// P0's own matrix `w` (`k × n`) masked with a new [`Request::OwnedMask`]'s B: the mask
    /// comes back holding F = W - B where B would be. A provider that draws B from a stream
    /// takes it off `w` in place as it draws (no `k × n` buffer of B beside W's: a model's
    /// weights are the largest thing the owner loads, and fresh memory costs a page fault per
    /// 4 KiB); the default asks for the mask and subtracts it ([`subtract_owned_mask`]).
    fn mask_owned(&mut self, w: Shares<R>, k: usize, n: usize) -> Result<MatmulMask<R>, Error> {
        subtract_owned_mask(self, w, k, n)
    }

    /// Whether the material is a rehearsal's stand-in (zeros, while a pipeline learns a
    /// program's plan): the program's outputs are then thrown away, and protocols may skip
    /// their local products (the requests, not the values, are what the rehearsal is for).
    fn rehearsing(&self) -> bool {
        false
    }
}

impl<R: Ring, P: Preprocessing<R> + ?Sized> Preprocessing<R> for &mut P {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        P::material(self, request)
    }
    fn materials(&mut self, requests: &[Request]) -> Result<Vec<Material<R>>, Error> {
        P::materials(self, requests)
    }
    fn opened_mask(&mut self, mask: MaskId, f: alloc::sync::Arc<crate::gemm::RightOperand<R>>) {
        P::opened_mask(self, mask, f)
    }
    fn refilled(&mut self) -> bool {
        P::refilled(self)
    }
    fn recycle(&mut self, used: Shares<R>) {
        P::recycle(self, used)
    }
    fn mask_owned(&mut self, w: Shares<R>, k: usize, n: usize) -> Result<MatmulMask<R>, Error> {
        P::mask_owned(self, w, k, n)
    }
    fn refill_met(&mut self) {
        P::refill_met(self)
    }
    fn rehearsing(&self) -> bool {
        P::rehearsing(self)
    }
}

/// [`Preprocessing::mask_owned`] from the provider's [`Request::OwnedMask`]: F = W - B made in
/// W's buffer, as a drawing provider makes it (B is wiped as it drops).
pub fn subtract_owned_mask<R: Ring, P: Preprocessing<R> + ?Sized>(
    provider: &mut P,
    mut w: Shares<R>,
    k: usize,
    n: usize,
) -> Result<MatmulMask<R>, Error> {
    let mut mask = match provider.material(&Request::OwnedMask { k, n })? {
        Material::OwnedMask(mask) if mask.b.len() == w.len() => mask,
        _ => return Err(Error::MaterialMismatch),
    };
    crate::ring::sub_assign(&mut w, &mask.b);
    mask.b = w;
    Ok(mask)
}

/// A provider that hands out matmul masks and can have them forgotten: what a long session
/// needs to keep the dealer's memory flat across models and inferences.
pub trait MaskRelease {
    /// The identity the next mask made through this provider gets.
    fn next_mask_id(&self) -> MaskId;
    /// Forgets every mask whose identity is in `masks` (tells the dealer, where there is one).
    fn release_masks(&mut self, masks: core::ops::Range<MaskId>) -> Result<(), Error>;
    /// Forgets every mask whose identity is `from` or later.
    fn release_masks_from(&mut self, from: MaskId) -> Result<(), Error> {
        self.release_masks(from..MaskId::MAX)
    }
}

impl<P: MaskRelease + ?Sized> MaskRelease for &mut P {
    fn next_mask_id(&self) -> MaskId {
        P::next_mask_id(self)
    }
    fn release_masks(&mut self, masks: core::ops::Range<MaskId>) -> Result<(), Error> {
        P::release_masks(self, masks)
    }
}

/// Typed requests over any [`Preprocessing`] provider.
pub trait PreprocessingExt<R: Ring>: Preprocessing<R> {
    /// `n` Beaver triples.
    fn beaver(&mut self, n: usize) -> Result<BeaverTriples<R>, Error> {
        match self.material(&Request::Beaver { n })? {
            Material::Beaver(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// `n` square pairs.
    fn square(&mut self, n: usize) -> Result<SquarePairs<R>, Error> {
        match self.material(&Request::Square { n })? {
            Material::Square(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// `n` truncation pairs for a shift of `frac_bits`.
    fn trunc(&mut self, n: usize, frac_bits: u32) -> Result<TruncPairs<R>, Error> {
        match self.material(&Request::Trunc { n, frac_bits })? {
            Material::Trunc(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// `n` truncation pairs with their squaring products, for a shift of `frac_bits`.
    fn trunc_square(&mut self, n: usize, frac_bits: u32) -> Result<TruncSquarePairs<R>, Error> {
        match self.material(&Request::TruncSquare { n, frac_bits })? {
            Material::TruncSquare(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// A `k × n` matmul mask.
    fn matmul_mask(&mut self, k: usize, n: usize) -> Result<MatmulMask<R>, Error> {
        match self.material(&Request::MatmulMask { k, n })? {
            Material::MatmulMask(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// A matmul triple with `m` rows for the mask `mask` (`k × n`).
    fn matmul_triple(&mut self, m: usize, k: usize, n: usize, mask: MaskId) -> Result<MatmulTriple<R>, Error> {
        match self.material(&Request::MatmulTriple { m, k, n, mask })? {
            Material::MatmulTriple(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// A `k × n` mask known to P0 alone.
    fn owned_mask(&mut self, k: usize, n: usize) -> Result<MatmulMask<R>, Error> {
        match self.material(&Request::OwnedMask { k, n })? {
            Material::OwnedMask(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// A `k × n` mask known to P0 alone, for a table read by rows, with the key of its rows'
    /// buckets (one value at P0).
    fn owned_table(&mut self, k: usize, n: usize) -> Result<(MatmulMask<R>, Shares<R>), Error> {
        match self.material(&Request::OwnedTable { k, n })? {
            Material::OwnedTable(t, key) => Ok((t, key)),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// Material for `m` rows of the owned table of mask `mask` (`k × n`).
    fn owned_lookup(&mut self, m: usize, k: usize, n: usize, mask: MaskId) -> Result<OwnedLookup<R>, Error> {
        match self.material(&Request::OwnedLookup { m, k, n, mask })? {
            Material::OwnedLookup(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// A triple with `m` rows for the owned mask `mask` (`k × n`).
    fn owned_triple(&mut self, m: usize, k: usize, n: usize, mask: MaskId) -> Result<MatmulTriple<R>, Error> {
        match self.material(&Request::OwnedTriple { m, k, n, mask })? {
            Material::OwnedTriple(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// Broadcast triples for a `rows × len` matrix (see [`Request::Broadcast`]).
    fn broadcast_triples(&mut self, rows: usize, len: usize, per_row: bool) -> Result<BeaverTriples<R>, Error> {
        match self.material(&Request::Broadcast { rows, len, per_row })? {
            Material::Broadcast(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// AND triples on `words` words of packed bits.
    fn and_triples(&mut self, words: usize) -> Result<AndTriples<R>, Error> {
        match self.material(&Request::And { words })? {
            Material::And(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// Material for a [`Request::Below`]: comparing values with bounds (and, with `times`, for
    /// the products of the bits with the values shifted right).
    fn below(&mut self, request: Request) -> Result<BelowMaterial<R>, Error> {
        if !matches!(request, Request::Below { .. }) {
            return Err(Error::MaterialMismatch);
        }
        match self.material(&request)? {
            Material::Below(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
    /// Material for one fused product or square (see [`Request::Fused`],
    /// [`Request::FusedSquare`]).
    fn fused(&mut self, request: Request) -> Result<FusedMaterial<R>, Error> {
        if !matches!(request, Request::Fused { .. } | Request::FusedSquare { .. }) {
            return Err(Error::MaterialMismatch);
        }
        match self.material(&request)? {
            Material::Fused(t) => Ok(t),
            _ => Err(Error::MaterialMismatch),
        }
    }
}

impl<R: Ring, P: Preprocessing<R> + ?Sized> PreprocessingExt<R> for P {}
