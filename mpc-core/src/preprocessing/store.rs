//! Material made ahead of time, and the recorder that learns which material a program needs.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{MaskId, Material, Preprocessing, Request};
use crate::error::Error;
use crate::ring::Ring;

/// A queue of material made in the offline phase and consumed, in order, in the online phase.
///
/// Each consumption is checked against the request it answers: a store filled for another
/// program yields [`Error::MaterialMismatch`], never wrong results.
#[derive(Debug)]
pub struct Store<R: Ring> {
    pub(super) queue: VecDeque<(Request, Material<R>)>,
}

impl<R: Ring> Default for Store<R> {
    fn default() -> Self {
        Self { queue: VecDeque::new() }
    }
}

impl<R: Ring> Store<R> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes material for `requests` with `provider` (one batch) and appends it.
    pub fn fill<P: Preprocessing<R> + ?Sized>(&mut self, provider: &mut P, requests: &[Request]) -> Result<(), Error> {
        let made = provider.materials(requests)?;
        self.queue.extend(requests.iter().copied().zip(made));
        Ok(())
    }

    /// Entries not yet consumed.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl<R: Ring> Preprocessing<R> for Store<R> {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        match self.queue.front() {
            None => Err(Error::MaterialExhausted),
            // A matmul triple stored for a mask is valid under the identity the mask had when
            // stored; the request must name the same one.
            Some((stored, _)) if stored != request => Err(Error::MaterialMismatch),
            Some(_) => Ok(self.queue.pop_front().expect("front exists").1),
        }
    }
}

/// The offline plan of a program: the requests it makes, in order, and the identities the live
/// provider gave the masks it created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    requests: Vec<Request>,
    /// (index in `requests`, identity at recording) of each mask request.
    masks: Vec<(usize, MaskId)>,
}

impl Plan {
    /// The requests, in order.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }
}

/// A store in front of a live provider: material made ahead is consumed first, anything else is
/// asked of the provider on the spot. While recording, the requests that reach the provider are
/// noted, so that one run of a program yields the plan of its offline phase:
///
/// 1. `record()`, run the program once (material comes live), `take_plan()`;
/// 2. offline: `fill(&plan)` makes every piece in two round trips with the dealer;
/// 3. online: run the program again; it consumes the store and never waits for the dealer.
///
/// Masks created by the program get new identities when the plan is filled; the plan's triples
/// are renamed to match, so the online run finds them under the identities it is handed.
#[derive(Debug)]
pub struct Staged<P, R: Ring> {
    live: P,
    store: Store<R>,
    plan: Option<Plan>,
}

fn mask_id<R: Ring>(m: &Material<R>) -> Option<MaskId> {
    match m {
        Material::MatmulMask(m) | Material::OwnedMask(m) => Some(m.id),
        _ => None,
    }
}

fn renamed(request: &Request, names: &alloc::collections::BTreeMap<MaskId, MaskId>) -> Request {
    match *request {
        Request::MatmulTriple { m, k, n, mask } => {
            Request::MatmulTriple { m, k, n, mask: names.get(&mask).copied().unwrap_or(mask) }
        }
        Request::OwnedTriple { m, k, n, mask } => {
            Request::OwnedTriple { m, k, n, mask: names.get(&mask).copied().unwrap_or(mask) }
        }
        other => other,
    }
}

impl<P: Preprocessing<R>, R: Ring> Staged<P, R> {
    /// An empty store in front of `live`.
    pub fn new(live: P) -> Self {
        Self { live, store: Store::new(), plan: None }
    }

    /// Starts noting the requests that reach the live provider.
    pub fn record(&mut self) {
        self.plan = Some(Plan::default());
    }

    /// Stops recording and returns the plan.
    pub fn take_plan(&mut self) -> Plan {
        self.plan.take().unwrap_or_default()
    }

    /// Makes the material of `plan` with the live provider, ahead of its use: the masks first
    /// (to learn their new identities), then everything else.
    pub fn fill(&mut self, plan: &Plan) -> Result<(), Error> {
        self.fill_with(plan, |_| Ok(()))
    }

    /// [`Staged::fill`], passing each piece of material to `offline_work` before storing it
    /// (to compute the products that need no input, say).
    pub fn fill_with(
        &mut self,
        plan: &Plan,
        mut offline_work: impl FnMut(&mut Material<R>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mask_requests: Vec<Request> = plan.masks.iter().map(|&(i, _)| plan.requests[i]).collect();
        let masks = self.live.materials(&mask_requests)?;
        let mut names = alloc::collections::BTreeMap::new();
        for (&(_, old), made) in plan.masks.iter().zip(&masks) {
            names.insert(old, mask_id(made).ok_or(Error::MaterialMismatch)?);
        }
        let is_mask: Vec<bool> = {
            let mut v = alloc::vec![false; plan.requests.len()];
            plan.masks.iter().for_each(|&(i, _)| v[i] = true);
            v
        };
        let others: Vec<Request> =
            plan.requests.iter().zip(&is_mask).filter(|(_, m)| !**m).map(|(r, _)| renamed(r, &names)).collect();
        let mut made_others = self.live.materials(&others)?.into_iter().zip(others);
        let mut made_masks = masks.into_iter().zip(mask_requests);
        for &mask in &is_mask {
            let (mut material, request) =
                if mask { made_masks.next() } else { made_others.next() }.ok_or(Error::MaterialExhausted)?;
            offline_work(&mut material)?;
            self.store.queue.push_back((request, material));
        }
        Ok(())
    }

    /// Material made ahead and not yet consumed.
    pub fn stored(&self) -> usize {
        self.store.len()
    }

    /// The live provider.
    pub fn live(&self) -> &P {
        &self.live
    }
}

impl<P: Preprocessing<R>, R: Ring> Preprocessing<R> for Staged<P, R> {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        if !self.store.is_empty() {
            return self.store.material(request);
        }
        let made = self.live.material(request)?;
        if let Some(plan) = &mut self.plan {
            if let Some(id) = mask_id(&made) {
                plan.masks.push((plan.requests.len(), id));
            }
            plan.requests.push(*request);
        }
        Ok(made)
    }
}
