//! An insecure, communication-free stand-in for the dealer.

use super::deal::{self, DealerState, RequestKeys};
use super::{Material, Preprocessing, Request};
use crate::error::Error;
use crate::ring::Ring;
use crate::share::Seed;
use crate::transport::Role;

/// Generators are a few hundred bytes: both sides live on the heap.
enum Side<R: Ring> {
    /// P0 runs the dealer's logic itself (so it knows P1's material: insecure).
    P0(alloc::boxed::Box<DealerState<R>>),
    /// P1 draws from its seed exactly as with the real dealer.
    P1(alloc::boxed::Box<RequestKeys>),
}

/// **Insecure** test double of the dealer: both parties hold the dealer's seeds and derive the
/// very material the real dealer would deal, without any message.
///
/// For tests, simulation and benchmarks of the online phase only: P0 learns P1's material.
pub struct TestDealer<R: Ring> {
    side: Side<R>,
    masks: deal::MaskIds,
}

impl<R: Ring> TestDealer<R> {
    /// The provider of `role`, from the seeds the real dealer would hand out.
    pub fn new(role: Role, seeds: [Seed; 2]) -> Self {
        let side = match role {
            Role::P0 => Side::P0(alloc::boxed::Box::new(DealerState::new(seeds))),
            Role::P1 => {
                let [_, s1] = seeds;
                Side::P1(alloc::boxed::Box::new(RequestKeys::new(s1)))
            }
        };
        Self { side, masks: deal::MaskIds::default() }
    }

    /// Both parties' providers from one 32-byte seed.
    pub fn pair(seed: [u8; 32]) -> (Self, Self) {
        let seeds = || {
            let mut s1 = seed;
            s1[0] ^= 0x5a;
            [Seed::from_bytes(seed), Seed::from_bytes(s1)]
        };
        (Self::new(Role::P0, seeds()), Self::new(Role::P1, seeds()))
    }
}

impl<R: Ring> super::MaskRelease for TestDealer<R> {
    fn next_mask_id(&self) -> super::MaskId {
        self.masks.next()
    }
    fn release_masks(&mut self, masks: core::ops::Range<super::MaskId>) -> Result<(), Error> {
        if let Side::P0(state) = &mut self.side {
            state.release_masks(masks);
        }
        Ok(())
    }
}

impl<R: Ring> Preprocessing<R> for TestDealer<R> {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        request.validate::<R>(deal::MAX_REQUEST_ELEMENTS)?;
        let parts = match &mut self.side {
            Side::P0(state) => state.deal(request)?,
            Side::P1(keys) => deal::draw(Role::P1, request, &mut keys.prg(request), &mut Default::default()),
        };
        Ok(deal::into_material(request, parts, self.masks.assign(request)))
    }
}

impl<R: Ring> core::fmt::Debug for TestDealer<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TestDealer(insecure)")
    }
}
