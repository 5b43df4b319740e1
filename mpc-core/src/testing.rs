//! Harnesses that feed untrusted bytes to the engine, shared by the fuzz targets (`fuzz/`) and
//! the property tests: whatever the bytes, the engine returns a result or a typed error, and
//! never panics, hangs or allocates beyond its limits.

use alloc::vec::Vec;

use crate::error::Error;
use crate::preprocessing::{Dealer, TestDealer};
use crate::protocol::{Party, Truncation};
use crate::share::Seed;
use crate::transport::{Replay, Role, Transport};

/// The largest request the dealer harness accepts (keeps fuzzing within memory limits).
pub const HARNESS_MAX_REQUEST_ELEMENTS: usize = 1 << 16;

/// Runs a dealer whose P0 link plays back `script` (batch counts, request headers).
pub fn replay_dealer_session(script: &[u8]) -> Result<u64, Error> {
    let dealer = Dealer::<u64>::from_seeds([Seed::from_bytes([1; 32]), Seed::from_bytes([2; 32])])
        .with_max_request_elements(HARNESS_MAX_REQUEST_ELEMENTS);
    dealer.serve(&mut Replay::new(script)).map(|stats| stats.requests)
}

/// Runs a fixed program at `role` (selected by the script's first byte) whose peer's messages
/// are played back from the rest of `script`: opening, Beaver product, square, both kinds of
/// matmul, dealer truncation and a reveal. Returns what was opened.
pub fn replay_party_session(script: &[u8]) -> Result<Vec<u64>, Error> {
    let (&first, script) = script.split_first().ok_or(Error::Malformed("empty script"))?;
    party_program(first, &mut Replay::new(script))
}

/// The program of [`replay_party_session`] over any transport (`first` picks the role and the
/// truncation).
fn party_program<T: Transport>(first: u8, transport: &mut T) -> Result<Vec<u64>, Error> {
    let role = if first & 1 == 0 { Role::P0 } else { Role::P1 };
    let (p0, p1) = TestDealer::<u64>::pair([3; 32]);
    let provider = if role == Role::P0 { p0 } else { p1 };
    let mut party = Party::with_seed(role, transport, provider, &Seed::from_bytes([4; 32]))
        .with_truncation(if first & 2 == 0 { Truncation::Local } else { Truncation::Dealer });
    let own = [1u64 << 16, 2 << 16, 3 << 16, 4 << 16, 5 << 16, 6 << 16];
    let x = party.input(role, Some(&own), 6)?;
    let y = party.input(role.peer(), None, 6)?;
    let mut opened = party.open(&x)?;
    let z = party.mul(&x, &y)?;
    let s = party.square(&z)?;
    let w = party.prepare_matrix(&y, 3, 2)?;
    let p = party.matmul_prepared(&s, 2, &w)?;
    let q = party.matmul(&x, &y, 2, 3, 2)?;
    opened.extend(party.open_many(&[&p, &q])?.concat());
    if let Some(v) = party.reveal_to(Role::P0, &q)? {
        opened.extend(v);
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::preprocessing::Request;
    use crate::transport::ErrorKind;
    use alloc::vec;

    fn message(bytes: &[u8]) -> Vec<u8> {
        let mut m = (bytes.len() as u32).to_le_bytes().to_vec();
        m.extend_from_slice(bytes);
        m
    }

    #[test]
    fn a_well_formed_dealer_script_is_served() {
        let mut script = message(&2u64.to_le_bytes());
        let mut headers = Request::Beaver { n: 4 }.encode().to_vec();
        headers.extend_from_slice(&Request::MatmulMask { k: 2, n: 2 }.encode());
        script.extend(message(&headers));
        script.extend(message(&0u64.to_le_bytes()));
        assert_eq!(replay_dealer_session(&script), Ok(2));
    }

    #[test]
    fn hostile_dealer_scripts_end_in_typed_errors() {
        // A batch count beyond the limit, a truncated header batch, an oversized request.
        // (u64::MAX, then a range of mask identities, is the control message that releases
        // masks: it is served; without its range, or with half of one, the session ends in an
        // error.)
        let too_many = message(&(u64::MAX - 1).to_le_bytes());
        assert_eq!(replay_dealer_session(&too_many), Err(Error::TooLarge));
        let mut release = message(&u64::MAX.to_le_bytes());
        assert_eq!(replay_dealer_session(&release), Err(Error::Transport(ErrorKind::Disconnected)));
        let mut half = release.clone();
        half.extend(message(&5u64.to_le_bytes()));
        assert_eq!(replay_dealer_session(&half), Err(Error::Transport(ErrorKind::LengthMismatch)));
        release.extend(message(&[5u64.to_le_bytes(), 9u64.to_le_bytes()].concat()));
        release.extend(message(&0u64.to_le_bytes()));
        assert_eq!(replay_dealer_session(&release), Ok(0));
        let mut cut = message(&3u64.to_le_bytes());
        cut.extend(message(&Request::Beaver { n: 4 }.encode()));
        assert_eq!(replay_dealer_session(&cut), Err(Error::Transport(ErrorKind::LengthMismatch)));
        let mut big = message(&1u64.to_le_bytes());
        big.extend(message(&Request::Beaver { n: 1 << 20 }.encode()));
        assert_eq!(replay_dealer_session(&big), Err(Error::TooLarge));
        assert_eq!(replay_dealer_session(&[]), Err(Error::Transport(ErrorKind::Disconnected)));
    }

    #[test]
    fn a_party_fed_garbage_stops_with_a_typed_error() {
        // The first opening expects 6 elements (48 bytes); 47 arrive.
        let mut script = vec![0u8];
        script.extend(message(&[0xAB; 47]));
        assert_eq!(replay_party_session(&script), Err(Error::Transport(ErrorKind::LengthMismatch)));
    }

    proptest! {
        #[test]
        fn arbitrary_dealer_scripts_never_panic(script: Vec<u8>) {
            let _ = replay_dealer_session(&script);
        }

        #[test]
        fn arbitrary_party_scripts_never_panic(script: Vec<u8>) {
            let _ = replay_party_session(&script);
        }

        #[test]
        fn well_framed_random_messages_reach_the_end(first: u8, seed: u64, fault in proptest::option::of(0usize..40)) {
            // Messages of the lengths the program expects, with random contents, run it to the
            // end; one message of another length stops it there with a typed error.
            let lengths = expected_lengths(first);
            let mut state = seed | 1;
            let mut script = vec![first];
            for (i, &len) in lengths.iter().enumerate() {
                let len = if fault == Some(i) { len + 8 } else { len };
                let bytes: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
                script.extend(message(&bytes));
            }
            let result = replay_party_session(&script);
            match fault {
                Some(i) if i < lengths.len() => {
                    prop_assert_eq!(result, Err(Error::Transport(ErrorKind::LengthMismatch)));
                }
                _ => prop_assert!(result.is_ok(), "{:?}", result),
            }
        }
    }

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// A peer that answers every receive with bytes of the length asked, noting the lengths.
    struct Stretchy(Vec<usize>);

    impl crate::transport::ErrorType for Stretchy {
        type Error = ErrorKind;
    }

    impl Transport for Stretchy {
        fn send(&mut self, _to: crate::transport::PartyId, _msg: &[u8]) -> Result<(), ErrorKind> {
            Ok(())
        }
        fn recv(&mut self, _from: crate::transport::PartyId, buf: &mut [u8]) -> Result<(), ErrorKind> {
            buf.fill(0x5A);
            self.0.push(buf.len());
            Ok(())
        }
    }

    /// The length of every message the program receives at the role and truncation of `first`.
    fn expected_lengths(first: u8) -> Vec<usize> {
        let mut peer = Stretchy(Vec::new());
        party_program(first, &mut peer).expect("the program runs against a compliant peer");
        assert!(peer.0.len() >= 5, "the program receives at every step");
        peer.0
    }
}
