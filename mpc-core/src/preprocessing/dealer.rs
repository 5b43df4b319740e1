//! The seeded trusted dealer (CrypTen's TTP) and each party's client of it.
//!
//! Setup: the dealer draws a seed per party and sends it (32 bytes each). Then, per batch of
//! requests, P0 sends the batch's headers and receives one correction message; P1 derives all
//! of its material locally and never talks to the dealer again. The dealer sees no input, no
//! weight and no output: only the public sizes of the requests.

use alloc::vec;
use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::deal::{self, DealerState, HEADER_LEN, RequestKeys};
use super::recycle::Recycled;
use super::{MaskId, Material, Preprocessing, Request};
use crate::error::Error;
use crate::ring::Ring;
use crate::share::{Seed, Shares};
use crate::transport::{PartyId, Role, Transport};
use crate::wire;

/// The most requests one batch may carry (bounds what a batch header can make the dealer read).
pub const MAX_BATCH: usize = 1 << 20;

/// What a dealer served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DealerStats {
    /// Batches answered.
    pub batches: u64,
    /// Requests answered.
    pub requests: u64,
    /// Ring elements of correction sent to P0.
    pub correction_elements: u64,
    /// The most ring elements of matmul masks held at once (flat over a long session: each
    /// inference's masks are released when it ends).
    pub peak_mask_elements: u64,
}

/// The trusted dealer's service for one session.
pub struct Dealer<R: Ring> {
    seeds: [Seed; 2],
    state: DealerState<R>,
    max_request_elements: usize,
    max_held_elements: usize,
}

/// The default bound on what one session makes the dealer hold at once, in ring elements: the
/// weight masks of the loaded models plus one request's correction. 2^29 (4 GiB of u64) holds
/// BERT-large's masks in the shared-weight mode with room for its largest batch.
pub const DEFAULT_MAX_HELD_ELEMENTS: usize = 1 << 29;

impl<R: Ring> Dealer<R> {
    /// A dealer with fresh seeds for P0 and P1.
    pub fn new<G: CryptoRng + ?Sized>(rng: &mut G) -> Self {
        let seeds = [Seed::random(rng), Seed::random(rng)];
        Self::from_seeds(seeds)
    }

    /// A dealer with given seeds (for reproducible tests).
    pub fn from_seeds(seeds: [Seed; 2]) -> Self {
        let mut state = DealerState::new(seeds.clone());
        state.limit_masks(DEFAULT_MAX_HELD_ELEMENTS);
        Self {
            seeds,
            state,
            max_request_elements: deal::MAX_REQUEST_ELEMENTS,
            max_held_elements: DEFAULT_MAX_HELD_ELEMENTS,
        }
    }

    /// Bounds what the session makes the dealer hold at once: its weight masks plus one request's
    /// correction, in ring elements (default [`DEFAULT_MAX_HELD_ELEMENTS`]). A session past it
    /// ends in [`Error::TooLarge`]; a dealer serving many sessions bounds each this way.
    pub fn with_max_held_elements(mut self, max: usize) -> Self {
        self.max_held_elements = max;
        self.state.limit_masks(max);
        self
    }

    /// Refuses requests with a part larger than `max` ring elements (default
    /// [`MAX_REQUEST_ELEMENTS`](super::MAX_REQUEST_ELEMENTS)).
    pub fn with_max_request_elements(mut self, max: usize) -> Self {
        self.max_request_elements = max;
        self
    }

    /// Serves a session over `transport` until P0 ends it ([`DealerClient::finish`]).
    ///
    /// Every header from P0 is validated before anything is allocated; a malformed or oversized
    /// request ends the session with an error.
    pub fn serve<T: Transport>(mut self, transport: &mut T) -> Result<DealerStats, Error> {
        transport.send(PartyId::P0, self.seeds[0].as_bytes()).map_err(Error::transport)?;
        transport.send(PartyId::P1, self.seeds[1].as_bytes()).map_err(Error::transport)?;
        let mut stats = DealerStats::default();
        loop {
            let mut count = [0u8; 8];
            transport.recv(PartyId::P0, &mut count).map_err(Error::transport)?;
            let count = u64::from_le_bytes(count);
            if count == 0 {
                return Ok(stats);
            }
            if count == RELEASE_MASKS {
                let mut range = [0u8; 16];
                transport.recv(PartyId::P0, &mut range).map_err(Error::transport)?;
                let word = |i: usize| u64::from_le_bytes(range[i..i + 8].try_into().expect("8 bytes"));
                self.state.release_masks(word(0)..word(8));
                continue;
            }
            let count = usize::try_from(count).ok().filter(|&c| c <= MAX_BATCH).ok_or(Error::TooLarge)?;
            let mut headers = vec![0u8; count * HEADER_LEN];
            transport.recv(PartyId::P0, &mut headers).map_err(Error::transport)?;
            let requests = headers
                .chunks_exact(HEADER_LEN)
                .map(|header| Request::decode::<R>(header, self.max_request_elements))
                .collect::<Result<Vec<_>, _>>()?;
            // Each request's correction goes out part by part as it is made (P0 receives each
            // part in its own buffer): the dealer holds one request's parts at a time.
            for request in &requests {
                if request.correction_len::<R>().saturating_add(self.state.mask_elements()) > self.max_held_elements {
                    return Err(Error::TooLarge);
                }
                let parts = self.state.corrections(request)?;
                // Each part's buffer goes to P0 as it is (a transport within one process hands
                // it over; P0 wipes it when its material is used).
                for part in parts.into_iter().filter(|p| !p.is_empty()) {
                    stats.correction_elements += part.len() as u64;
                    wire::send_owned(transport, PartyId::P0, part)?;
                }
                stats.requests += 1;
                stats.peak_mask_elements = stats.peak_mask_elements.max(self.state.mask_elements() as u64);
            }
            stats.batches += 1;
        }
    }
}

impl<R: Ring> core::fmt::Debug for Dealer<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Dealer(..)")
    }
}

/// The batch count that asks the dealer to release masks, followed by the first identity to
/// release and the first to keep, after it (0 ends the session; real batches are at most
/// `MAX_BATCH`).
const RELEASE_MASKS: u64 = u64::MAX;

/// A party's side of the trusted dealer: a [`Preprocessing`] provider.
pub struct DealerClient<T: Transport> {
    role: Role,
    transport: T,
    keys: RequestKeys,
    masks: deal::MaskIds,
    /// Used material's buffers, drawn over by the next requests.
    recycled: Recycled,
}

/// Default bound on the used material a [`DealerClient`] keeps to draw over: 2^23 ring
/// elements (64 MiB of u64), about one GeLU layer's comparison material at BERT-base's 128
/// tokens, held beside a pipeline's material budget. See [`DealerClient::with_recycling`].
pub const DEFAULT_RECYCLED: usize = 1 << 23;

impl<T: Transport> DealerClient<T> {
    /// Receives this party's seed from the dealer over `transport`.
    pub fn connect(role: Role, mut transport: T) -> Result<Self, Error> {
        let mut seed = Seed::from_bytes([0u8; Seed::LEN]);
        transport.recv(PartyId::Dealer, &mut seed.0).map_err(Error::transport)?;
        Ok(Self {
            role,
            transport,
            keys: RequestKeys::new(seed),
            masks: deal::MaskIds::default(),
            recycled: Recycled::new(DEFAULT_RECYCLED),
        })
    }

    /// Keeps at most `elements` ring elements of used material to draw the next material over
    /// (0 wipes each buffer as it is used, at the cost of a pass over memory and fresh pages
    /// for the next).
    pub fn with_recycling(mut self, elements: usize) -> Self {
        self.recycled = Recycled::new(elements);
        self
    }

    /// Ends the dealer's session (P0; P1 has nothing to end) and returns the transport.
    pub fn finish(mut self) -> Result<T, Error> {
        if self.role == Role::P0 {
            self.transport.send(PartyId::Dealer, &0u64.to_le_bytes()).map_err(Error::transport)?;
        }
        Ok(self.transport)
    }

    /// The transport to the dealer (for its metering).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// 64-bit words of used buffers held now ([`Preprocessing::recycle`]) for the next draws.
    pub fn recycled_words(&self) -> usize {
        self.recycled.held()
    }
}

impl<T: Transport> super::MaskRelease for DealerClient<T> {
    fn next_mask_id(&self) -> MaskId {
        self.masks.next()
    }

    /// P0 tells the dealer (an 8-byte and a 16-byte message); P1 has nothing to say.
    fn release_masks(&mut self, masks: core::ops::Range<MaskId>) -> Result<(), Error> {
        if self.role == Role::P0 && !masks.is_empty() {
            let mut range = [0u8; 16];
            range[..8].copy_from_slice(&masks.start.to_le_bytes());
            range[8..].copy_from_slice(&masks.end.to_le_bytes());
            self.transport.send(PartyId::Dealer, &RELEASE_MASKS.to_le_bytes()).map_err(Error::transport)?;
            self.transport.send(PartyId::Dealer, &range).map_err(Error::transport)?;
        }
        Ok(())
    }
}

impl<R: Ring, T: Transport> Preprocessing<R> for DealerClient<T> {
    fn material(&mut self, request: &Request) -> Result<Material<R>, Error> {
        let mut out = self.materials(core::slice::from_ref(request))?;
        out.pop().ok_or(Error::MaterialExhausted)
    }

    fn materials(&mut self, requests: &[Request]) -> Result<Vec<Material<R>>, Error> {
        self.answer(requests, |role, r, prg, recycled| deal::draw::<R>(role, r, prg, recycled))
    }

    fn mask_owned(&mut self, w: Shares<R>, k: usize, n: usize) -> Result<super::MatmulMask<R>, Error> {
        let request = Request::OwnedMask { k, n };
        if self.role != Role::P0 || w.len() != k * n {
            return Err(Error::MaterialMismatch);
        }
        // B comes off W as it is drawn: F is made in W's buffer.
        let mut w = Some(w);
        let made = self.answer(core::slice::from_ref(&request), |_, r, prg, _| {
            deal::draw_off(r, prg, w.take().unwrap_or_default())
        })?;
        match made.into_iter().next() {
            Some(Material::OwnedMask(mask)) => Ok(mask),
            _ => Err(Error::MaterialMismatch),
        }
    }

    fn recycle(&mut self, used: Shares<R>) {
        self.recycled.put(used);
    }
}

impl<T: Transport> DealerClient<T> {
    /// Answers `requests` with the parts `draw` makes of each from its PRG (P0 sends the
    /// headers first, and receives the dealer's corrections after).
    fn answer<R: Ring>(
        &mut self,
        requests: &[Request],
        mut draw: impl FnMut(Role, &Request, &mut crate::share::Expander, &mut Recycled) -> deal::Parts<R>,
    ) -> Result<Vec<Material<R>>, Error> {
        for r in requests {
            r.validate::<R>(deal::MAX_REQUEST_ELEMENTS)?;
        }
        if self.role == Role::P0 && !requests.is_empty() {
            // Send the whole batch before drawing, so the dealer works while we do.
            let mut headers = Vec::with_capacity(requests.len() * HEADER_LEN);
            for r in requests {
                headers.extend_from_slice(&r.encode());
            }
            let count = (requests.len() as u64).to_le_bytes();
            self.transport.send(PartyId::Dealer, &count).map_err(Error::transport)?;
            self.transport.send(PartyId::Dealer, &headers).map_err(Error::transport)?;
        }
        let mut parts: Vec<_> =
            requests.iter().map(|r| draw(self.role, r, &mut self.keys.prg(r), &mut self.recycled)).collect();
        if self.role == Role::P0 {
            // The dealer's correction, one message per non-empty part, in request order.
            let handed_over = self.transport.hands_over_words();
            for (p, r) in parts.iter_mut().zip(requests) {
                // Into a used buffer where one is held (a socket's bytes land there), else in the
                // buffer the transport provides (an in-process dealer's own, taken as it is: the
                // pool's buffers then stay for the draws, rather than being taken and wiped).
                deal::receive_correction(p, r, |len| {
                    let used = if handed_over { None } else { self.recycled.take(len) };
                    match used {
                        Some(mut used) => wire::recv(&mut self.transport, PartyId::Dealer, &mut used).map(|()| used),
                        None => wire::recv_owned(&mut self.transport, PartyId::Dealer, len),
                    }
                })?;
            }
        }
        Ok(parts
            .into_iter()
            .zip(requests)
            .map(|(p, r)| {
                let id = self.masks.assign(r);
                deal::into_material(r, p, id)
            })
            .collect())
    }
}

impl<T: Transport> core::fmt::Debug for DealerClient<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DealerClient({})", self.role)
    }
}
