//! The ring Z_2^k of share values, with wrapping arithmetic.
//!
//! Every share, every piece of correlated randomness and every opened value is an element of a
//! [`Ring`]. The implementation for `u64` (Z_2^64) is the one the protocols are tuned for; `u32`
//! (Z_2^32) exists for constrained targets and halves traffic at the cost of range.

use core::fmt::Debug;

use num_traits::{WrappingAdd, WrappingMul, WrappingNeg, WrappingSub};
use rand_core::Rng;
use zeroize::DefaultIsZeroes;

/// The ring element whose `k` low bits are set (all of them for `k` ≥ the ring's bits).
pub fn low_ones<R: Ring>(k: usize) -> R {
    if k >= R::BITS as usize { R::ZERO.wrapping_sub(&R::ONE) } else { R::ONE.shl(k as u32).wrapping_sub(&R::ONE) }
}

/// `v` mod 2^`width`.
pub fn low_bits<R: Ring>(v: R, width: u32) -> R {
    v & low_ones::<R>(width as usize)
}

/// An element of Z_2^k with wrapping arithmetic: the type of every share.
///
/// Elements are plain unsigned integers; the *signed* view (two's complement) is what fixed-point
/// decoding and arithmetic shifts use.
pub trait Ring:
    Copy
    + Eq
    + Ord
    + Default
    + Debug
    + Send
    + Sync
    + 'static
    + WrappingAdd
    + WrappingSub
    + WrappingMul
    + WrappingNeg
    + core::ops::BitAnd<Output = Self>
    + core::ops::BitXor<Output = Self>
    + core::ops::Not<Output = Self>
    + bytemuck::Pod
    + DefaultIsZeroes
{
    /// Number of bits k of the ring Z_2^k.
    const BITS: u32;
    /// Bytes of one element on the wire.
    const BYTES: usize = (Self::BITS / 8) as usize;
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;

    /// Reduces a signed integer modulo 2^k.
    fn from_i64(x: i64) -> Self;
    /// The signed (two's complement) view of the element, sign-extended to 64 bits.
    fn to_i64(self) -> i64;
    /// Reduces an unsigned integer modulo 2^k.
    fn from_u64(x: u64) -> Self;
    /// The unsigned view of the element.
    fn to_u64(self) -> u64;
    /// Arithmetic (sign-propagating) right shift of the signed view.
    fn shr_arith(self, bits: u32) -> Self;
    /// Logical right shift of the unsigned view.
    fn shr_logical(self, bits: u32) -> Self;
    /// Left shift, dropping the bits that leave the ring.
    fn shl(self, bits: u32) -> Self;
    /// The most significant bit as 0 or 1.
    fn msb(self) -> Self {
        self.shr_logical(Self::BITS - 1)
    }
    /// Converts from little-endian wire order (a no-op on little-endian machines).
    fn le_to_native(self) -> Self;
    /// Converts to little-endian wire order (a no-op on little-endian machines).
    fn native_to_le(self) -> Self;

    /// `c += a · b` for row-major `a` (m×k), `b` (k×n) and `c` (m×n), wrapping.
    ///
    /// The default is the portable blocked kernel; `u64` dispatches to SIMD kernels at run time
    /// when the `std` feature is on.
    fn gemm_acc(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]) {
        crate::gemm::portable::gemm_acc(m, k, n, a, b, c);
    }

    /// Packs `b` (k×n) for many products with [`Ring::gemm_acc_packed`], as `width` allows, when
    /// this ring's kernel has a packed form on this CPU (`u64` on AMX); `None` otherwise.
    fn pack_rhs(k: usize, n: usize, b: &[Self], width: crate::gemm::Width) -> Option<crate::gemm::PackedRhs> {
        let _ = (k, n, b, width);
        None
    }

    /// Packs a uniformly random `b` (k×n, every limb) drawn by `fill` a band of whole rows at a
    /// time, in order, when this ring's kernel has a packed form on this CPU; `None`, without
    /// calling `fill`, otherwise.
    fn pack_rhs_drawn(k: usize, n: usize, fill: &mut dyn FnMut(&mut [Self])) -> Option<crate::gemm::PackedRhs> {
        let _ = (k, n, fill);
        None
    }

    /// `c += a · b` like [`Ring::gemm_acc`], from `packed` (made by [`Ring::pack_rhs`] from this
    /// same `b`) when given.
    fn gemm_acc_packed(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        b: &[Self],
        packed: Option<&crate::gemm::PackedRhs>,
        c: &mut [Self],
    ) {
        let _ = packed;
        Self::gemm_acc(m, k, n, a, b, c);
    }
}

macro_rules! impl_ring {
    ($t:ty, $signed:ty, fast_gemm) => {
        impl_ring!($t, $signed, {
            fn gemm_acc(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]) {
                crate::gemm::gemm_acc_u64(m, k, n, a, b, c);
            }
            fn pack_rhs(k: usize, n: usize, b: &[Self], width: crate::gemm::Width) -> Option<crate::gemm::PackedRhs> {
                crate::gemm::pack_rhs_u64(k, n, b, width)
            }
            fn pack_rhs_drawn(
                k: usize,
                n: usize,
                fill: &mut dyn FnMut(&mut [Self]),
            ) -> Option<crate::gemm::PackedRhs> {
                crate::gemm::pack_rhs_drawn_u64(k, n, fill)
            }
            fn gemm_acc_packed(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                b: &[Self],
                packed: Option<&crate::gemm::PackedRhs>,
                c: &mut [Self],
            ) {
                crate::gemm::gemm_acc_packed_u64(m, k, n, a, b, packed, c);
            }
        });
    };
    ($t:ty, $signed:ty) => {
        impl_ring!($t, $signed, {});
    };
    ($t:ty, $signed:ty, { $($extra:item)* }) => {
        impl Ring for $t {
            const BITS: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            const ONE: Self = 1;

            #[inline(always)]
            fn from_i64(x: i64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as $signed as i64
            }
            #[inline(always)]
            fn from_u64(x: u64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_u64(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn shr_arith(self, bits: u32) -> Self {
                ((self as $signed) >> bits) as $t
            }
            #[inline(always)]
            fn shr_logical(self, bits: u32) -> Self {
                self >> bits
            }
            #[inline(always)]
            fn shl(self, bits: u32) -> Self {
                self << bits
            }
            #[inline(always)]
            fn le_to_native(self) -> Self {
                <$t>::from_le(self)
            }
            #[inline(always)]
            fn native_to_le(self) -> Self {
                <$t>::to_le(self)
            }
            $($extra)*
        }
    };
}

impl_ring!(u32, i32);
impl_ring!(u64, i64, fast_gemm);

/// Fills `out` with uniform ring elements drawn from `rng`, in a byte order that does not depend
/// on the machine (so two parties on different architectures derive the same values).
pub fn fill_uniform<R: Ring, G: Rng + ?Sized>(rng: &mut G, out: &mut [R]) {
    rng.fill_bytes(bytemuck::cast_slice_mut(out));
    if cfg!(target_endian = "big") {
        for x in out.iter_mut() {
            *x = x.le_to_native();
        }
    }
}

/// Elementwise `out[i] = a[i] + b[i]` (wrapping).
pub fn add_into<R: Ring>(out: &mut [R], a: &[R], b: &[R]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x.wrapping_add(y);
    }
}

/// Elementwise `acc[i] += x[i]` (wrapping).
pub fn add_assign<R: Ring>(acc: &mut [R], x: &[R]) {
    for (a, x) in acc.iter_mut().zip(x) {
        *a = a.wrapping_add(x);
    }
}

/// Elementwise `acc[i] -= x[i]` (wrapping).
pub fn sub_assign<R: Ring>(acc: &mut [R], x: &[R]) {
    for (a, x) in acc.iter_mut().zip(x) {
        *a = a.wrapping_sub(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_views_and_shifts() {
        let minus_three = u64::from_i64(-3);
        assert_eq!(minus_three, u64::MAX - 2);
        assert_eq!(minus_three.to_i64(), -3);
        assert_eq!(minus_three.shr_arith(1).to_i64(), -2);
        assert_eq!(minus_three.msb(), 1);
        assert_eq!(5u64.msb(), 0);
        assert_eq!(u32::from_i64(-1), u32::MAX);
        assert_eq!(u32::MAX.to_i64(), -1);
        assert_eq!(u32::from_i64(-8).shr_arith(2).to_i64(), -2);
        assert_eq!(u32::from_u64(1 << 32 | 7), 7);
    }

    #[test]
    fn wrapping_laws() {
        let a = u64::MAX - 1;
        assert_eq!(a.wrapping_add(3), 1);
        assert_eq!(1u64.wrapping_sub(a), 3);
        assert_eq!(a.wrapping_mul(a), 4);
        assert_eq!(a.wrapping_neg(), 2);
    }
}
