//! Networks we cannot reach from here: a transport decorator that adds latency and a bandwidth
//! limit, and the projection it checks.
//!
//! Projection (DESIGN.md): time = compute + rounds × RTT + bytes / bandwidth, with the bytes of
//! the busier direction (links are full duplex).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mpc_core::transport::{ErrorType, PartyId, Transport};
use serde::Serialize;

/// A network's round-trip time and bandwidth.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NetworkProfile {
    /// The profile's name.
    pub name: &'static str,
    /// Round-trip time in seconds.
    pub rtt_s: f64,
    /// Bandwidth per direction in bits per second.
    pub bandwidth_bps: f64,
}

impl NetworkProfile {
    /// 1 Gbps, 0.5 ms round trip.
    pub const LAN: NetworkProfile = NetworkProfile { name: "lan", rtt_s: 0.5e-3, bandwidth_bps: 1e9 };
    /// 100 Mbps, 40 ms round trip.
    pub const WAN: NetworkProfile = NetworkProfile { name: "wan", rtt_s: 40e-3, bandwidth_bps: 100e6 };

    /// The profile named `lan` or `wan`.
    pub fn named(name: &str) -> Option<NetworkProfile> {
        match name {
            "lan" => Some(Self::LAN),
            "wan" => Some(Self::WAN),
            _ => None,
        }
    }

    /// Seconds to push `bytes` through one direction.
    pub fn transfer_s(&self, bytes: u64) -> f64 {
        bytes as f64 * 8.0 / self.bandwidth_bps
    }

    /// Projected wall time of a run that computed for `compute_s` seconds with `rounds` rounds
    /// and `busiest_direction_bytes` bytes on its busier direction.
    pub fn project(&self, compute_s: f64, rounds: u64, busiest_direction_bytes: u64) -> f64 {
        compute_s + rounds as f64 * self.rtt_s + self.transfer_s(busiest_direction_bytes)
    }
}

/// Delays what a transport carries as `profile` would: each message takes its transfer time at
/// the sender, and the first message received after a send (the answer of a round) waits one
/// round trip. Shaping is on while the shared switch is on, so that set-up can run at full speed.
#[derive(Debug)]
pub struct Shaped<T> {
    inner: T,
    profile: NetworkProfile,
    on: Arc<AtomicBool>,
    sent_since_receive: bool,
}

impl<T> Shaped<T> {
    /// Shapes `inner` while `on` is set.
    pub fn new(inner: T, profile: NetworkProfile, on: Arc<AtomicBool>) -> Self {
        Self { inner, profile, on, sent_since_receive: false }
    }

    fn pause(&self, seconds: f64) {
        if self.on.load(Ordering::Relaxed) && seconds > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(seconds));
        }
    }
}

impl<T: ErrorType> ErrorType for Shaped<T> {
    type Error = T::Error;
}

impl<T: Transport> Transport for Shaped<T> {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), T::Error> {
        self.pause(self.profile.transfer_s(msg.len() as u64));
        self.sent_since_receive = true;
        self.inner.send(to, msg)
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), T::Error> {
        self.inner.recv(from, buf)?;
        if std::mem::take(&mut self.sent_since_receive) {
            self.pause(self.profile.rtt_s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::channel::ChannelTransport;

    #[test]
    fn projection_adds_round_trips_and_transfer_time() {
        let p = NetworkProfile::WAN;
        assert!((p.project(1.0, 10, 12_500_000) - (1.0 + 0.4 + 1.0)).abs() < 1e-9);
        assert_eq!(NetworkProfile::named("lan"), Some(NetworkProfile::LAN));
        assert_eq!(NetworkProfile::named("moon"), None);
    }

    #[test]
    fn a_round_waits_one_round_trip_once_switched_on() {
        let profile = NetworkProfile { name: "test", rtt_s: 0.05, bandwidth_bps: 1e12 };
        let on = Arc::new(AtomicBool::new(false));
        let (a, b) = ChannelTransport::pair(PartyId::P0, PartyId::P1);
        let (mut a, mut b) = (Shaped::new(a, profile, on.clone()), Shaped::new(b, profile, on.clone()));
        let round = |a: &mut Shaped<ChannelTransport>, b: &mut Shaped<ChannelTransport>| {
            let start = std::time::Instant::now();
            a.send(PartyId::P1, &[1]).unwrap();
            b.send(PartyId::P0, &[2]).unwrap();
            let mut buf = [0u8; 1];
            a.recv(PartyId::P1, &mut buf).unwrap();
            assert_eq!(buf, [2]);
            b.recv(PartyId::P0, &mut buf).unwrap();
            assert_eq!(buf, [1]);
            start.elapsed()
        };
        round(&mut a, &mut b);
        on.store(true, Ordering::Relaxed);
        // Each party waits one round trip for its answer (here one after the other).
        assert!(round(&mut a, &mut b) >= Duration::from_millis(100));
    }
}
