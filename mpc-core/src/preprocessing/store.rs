//! Material made ahead of time, and the recorder that learns which material a program needs.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{Material, Preprocessing, Request};
use crate::error::Error;
use crate::ring::Ring;

/// A queue of material made in the offline phase and consumed, in order, in the online phase.
///
/// Each consumption is checked against the request it answers: a store filled for another
/// program yields [`Error::MaterialMismatch`], never wrong results.
#[derive(Debug)]
pub struct Store<R: Ring> {
    queue: VecDeque<(Request, Material<R>)>,
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

/// Passes requests through to a provider and records them: run a program once to learn the
/// plan of its offline phase.
#[derive(Debug)]
pub struct Recorder<P> {
    inner: P,
    requests: Vec<Request>,
}

impl<P> Recorder<P> {
    /// Records the requests made to `inner`.
    pub fn new(inner: P) -> Self {
        Self { inner, requests: Vec::new() }
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// Unwraps the provider and the recorded plan.
    pub fn into_parts(self) -> (P, Vec<Request>) {
        (self.inner, self.requests)
    }
}

impl<R: Ring, P: Preprocessing<R>> Preprocessing<R> for Recorder<P> {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        self.requests.push(*request);
        self.inner.material(request)
    }
    fn materials(&mut self, requests: &[Request]) -> Result<Vec<Material<R>>, Error> {
        self.requests.extend_from_slice(requests);
        self.inner.materials(requests)
    }
}
