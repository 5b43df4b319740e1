//! Bring your own transport: the parties talk through two lock-free single-producer,
//! single-consumer byte rings (`heapless::spsc`, as between two cores or two processes sharing
//! memory) instead of a socket, and compute a private layer, ReLU(x · W + b), over them.
//!
//! The transport is written in no_std style: fixed-capacity rings, no allocation inside the ring,
//! no operating-system primitive. A message longer than a ring streams through it; the sender
//! keeps what does not fit yet in an outbox and pushes it while it waits for its own messages, so
//! that two parties who both send before they receive never block each other (the contract of
//! `mpc_core::Transport`).
//!
//! Its material comes from the insecure `TestDealer` (P0 derives P1's material too), because the
//! example shows the transport alone, between two cores with no third party to run a dealer;
//! `examples/private_bert.rs` runs a whole `Session` with the real dealer.
//!
//! ```sh
//! cargo run --release --example shared_memory_transport
//! ```

use std::collections::VecDeque;

use heapless::spsc::{Consumer, Producer, Queue};
use mpc_core::preprocessing::TestDealer;
use mpc_core::share::Seed;
use mpc_core::transport::{ErrorKind, ErrorType, PartyId, Role, Transport};
use mpc_core::{FixedPoint, Party};

/// Capacity of each ring in bytes: small on purpose, so that messages stream through.
const RING: usize = 4096;
/// How many polls of an empty ring before giving up (a stalled peer must not hang us).
const PATIENCE: u64 = 200_000_000;

/// One end of a pair of rings.
struct RingTransport<'a> {
    peer: PartyId,
    tx: Producer<'a, u8>,
    rx: Consumer<'a, u8>,
    outbox: VecDeque<u8>,
}

impl RingTransport<'_> {
    /// Moves as much of the outbox into the ring as fits.
    fn pump(&mut self) {
        while let Some(&b) = self.outbox.front() {
            if self.tx.enqueue(b).is_err() {
                break;
            }
            self.outbox.pop_front();
        }
    }

    /// Receives exactly `out.len()` bytes, pumping the outbox meanwhile.
    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), ErrorKind> {
        let mut idle = 0u64;
        let mut filled = 0;
        while filled < out.len() {
            self.pump();
            match self.rx.dequeue() {
                Some(b) => {
                    out[filled] = b;
                    filled += 1;
                    idle = 0;
                }
                None => {
                    idle += 1;
                    if idle > PATIENCE {
                        return Err(ErrorKind::TimedOut);
                    }
                    std::hint::spin_loop();
                }
            }
        }
        Ok(())
    }
}

impl ErrorType for RingTransport<'_> {
    type Error = ErrorKind;
}

impl Transport for RingTransport<'_> {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), ErrorKind> {
        if to != self.peer {
            return Err(ErrorKind::UnknownPeer);
        }
        let len = u32::try_from(msg.len()).map_err(|_| ErrorKind::TooLarge)?;
        self.outbox.extend(len.to_le_bytes());
        self.outbox.extend(msg);
        self.pump();
        Ok(())
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), ErrorKind> {
        if from != self.peer {
            return Err(ErrorKind::UnknownPeer);
        }
        let mut len = [0u8; 4];
        self.read_exact(&mut len)?;
        if u32::from_le_bytes(len) as usize != buf.len() {
            return Err(ErrorKind::LengthMismatch);
        }
        self.read_exact(buf)
    }
}

fn main() {
    let fp = FixedPoint::default();
    let (rows, k, n) = (4, 16, 8);
    let x: Vec<f64> = (0..rows * k).map(|i| ((i * 7 % 13) as f64 - 6.0) / 4.0).collect();
    let w: Vec<f64> = (0..k * n).map(|i| ((i * 5 % 11) as f64 - 5.0) / 10.0).collect();
    let bias: Vec<f64> = (0..n).map(|j| j as f64 / 8.0 - 0.5).collect();

    let mut p0_to_p1: Queue<u8, RING> = Queue::new();
    let mut p1_to_p0: Queue<u8, RING> = Queue::new();
    let (tx01, rx01) = p0_to_p1.split();
    let (tx10, rx10) = p1_to_p0.split();
    let ends = [
        RingTransport { peer: PartyId::P1, tx: tx01, rx: rx10, outbox: VecDeque::new() },
        RingTransport { peer: PartyId::P0, tx: tx10, rx: rx01, outbox: VecDeque::new() },
    ];
    // The test double stands in for the dealer: no third party on this board.
    let (d0, d1) = TestDealer::<u64>::pair([7; 32]);
    let pairwise = Seed::from_bytes([9; 32]);

    let outputs: Vec<Vec<f64>> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for ((role, transport), dealer) in [Role::P0, Role::P1].into_iter().zip(ends).zip([d0, d1]) {
            let (x, w, bias, pairwise) = (&x, &w, &bias, &pairwise);
            handles.push(s.spawn(move || {
                let mut party = Party::with_seed(role, transport, dealer, pairwise);
                // P0 owns W and b; P1 owns x.
                let w_enc: Vec<u64> = fp.encode_vec(w);
                let owned = party.prepare_owned((role == Role::P0).then_some(&w_enc[..]), k, n).unwrap();
                let b = party.input_fixed(Role::P0, (role == Role::P0).then_some(&bias[..]), n).unwrap();
                let xs = party.input_fixed(Role::P1, (role == Role::P1).then_some(&x[..]), rows * k).unwrap();
                let mut y = party.matmul_owned(&xs, rows, &owned).unwrap();
                for r in 0..rows {
                    mpc_core::ring::add_assign(&mut y[r * n..(r + 1) * n], &b);
                }
                let activated = party.relu(&y).unwrap();
                party.open_fixed(&activated).unwrap()
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut max_err = 0f64;
    for r in 0..rows {
        for j in 0..n {
            let plain = (0..k).map(|p| x[r * k + p] * w[p * n + j]).sum::<f64>() + bias[j];
            max_err = max_err.max((outputs[1][r * n + j] - plain.max(0.0)).abs());
        }
    }
    assert_eq!(outputs[0], outputs[1]);
    println!(
        "ReLU(x·W + b) over shared-memory rings of {RING} bytes: {rows}x{n} outputs, max |private - plaintext| = {max_err:.2e}"
    );
    assert!(max_err < 1e-3, "private result disagrees with plaintext");
}
