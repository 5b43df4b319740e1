//! An integrator's private inference: a small BERT-shaped classifier through
//! [`Session`](mpc_transformer::Session), over a transport written here (std channels with
//! timeouts, as an integrator would wrap their own message bus), with the real
//! [`Dealer`](mpc_core::preprocessing::Dealer) in a third thread.
//!
//! P0 owns the weights, P1 owns the text; P1 learns the logits, P0 learns nothing but the length.
//! One session carries several queries: the model enters the computation once, each length is
//! planned once.
//!
//! ```sh
//! cargo run --release --example private_bert
//! ```

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use mpc_core::preprocessing::{Dealer, DealerClient};
use mpc_core::transport::{ErrorKind, ErrorType, PartyId, Role, Transport};
use mpc_nn::{Backend, Plain};
use mpc_transformer::{BertConfig, Encoder, Params, Preset, Session, SessionError, SessionOptions, Unobserved};

/// A link to one peer: where our messages go, where theirs come from.
type Link = (Sender<Vec<u8>>, Receiver<Vec<u8>>);

/// The integrator's transport: one channel pair per peer, a timeout on every receive.
#[derive(Default)]
struct Mailbox {
    links: BTreeMap<PartyId, Link>,
}

impl Mailbox {
    /// Links `a` and `b`: adds the link to each side's mailbox.
    fn link(a: (PartyId, &mut Mailbox), b: (PartyId, &mut Mailbox)) {
        let (to_b, from_a) = channel();
        let (to_a, from_b) = channel();
        a.1.links.insert(b.0, (to_b, from_b));
        b.1.links.insert(a.0, (to_a, from_a));
    }
}

impl ErrorType for Mailbox {
    type Error = ErrorKind;
}

impl Transport for Mailbox {
    fn send(&mut self, to: PartyId, msg: &[u8]) -> Result<(), ErrorKind> {
        let (tx, _) = self.links.get(&to).ok_or(ErrorKind::UnknownPeer)?;
        tx.send(msg.to_vec()).map_err(|_| ErrorKind::Disconnected)
    }

    fn recv(&mut self, from: PartyId, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let (_, rx) = self.links.get(&from).ok_or(ErrorKind::UnknownPeer)?;
        let msg = rx.recv_timeout(Duration::from_secs(60)).map_err(|e| match e {
            RecvTimeoutError::Timeout => ErrorKind::TimedOut,
            RecvTimeoutError::Disconnected => ErrorKind::Disconnected,
        })?;
        if msg.len() != buf.len() {
            return Err(ErrorKind::LengthMismatch);
        }
        buf.copy_from_slice(&msg);
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = BertConfig { num_labels: Some(2), ..BertConfig::tiny(2, 64, 4, 1000) };
    let params = Params::random_with_std(&config, 7, 0.1);
    let preset = Preset::parse("quad+2quad").ok_or("preset")?;
    let queries: [Vec<u32>; 3] = [vec![101, 7, 42, 102], vec![101, 9, 9, 300, 12, 102], vec![101, 5, 102]];

    // Each party's links: P0-P1, P0-dealer, P1-dealer (separate mailboxes for peer and dealer).
    let (mut p0, mut p1, mut p0_dealer, mut p1_dealer, mut dealer) = Default::default();
    Mailbox::link((PartyId::P0, &mut p0), (PartyId::P1, &mut p1));
    Mailbox::link((PartyId::P0, &mut p0_dealer), (PartyId::Dealer, &mut dealer));
    Mailbox::link((PartyId::P1, &mut p1_dealer), (PartyId::Dealer, &mut dealer));
    let rng = || mpc_io_std::os_rng().map_err(|e| e.to_string());

    let answers = std::thread::scope(|s| -> Result<Vec<Vec<f64>>, String> {
        let mut dealer_rng = rng()?;
        let dealer = s.spawn(move || Dealer::<u64>::new(&mut dealer_rng).serve(&mut dealer));
        let owner = s.spawn(|| -> Result<(), String> {
            let client = DealerClient::connect(Role::P0, p0_dealer).map_err(|e| e.to_string())?;
            let mut session = Session::connect(Role::P0, p0, client, &mut rng()?, SessionOptions::default())
                .map_err(|e| e.to_string())?;
            session.load(&config, preset, Some(&params), None).map_err(|e| e.to_string())?;
            // P0 answers until P1 ends the session: it need not know how many queries come.
            loop {
                match session.infer(None, &mut Unobserved) {
                    Ok(answer) => assert_eq!(answer.output, None, "P0 learns nothing of the answer"),
                    Err(SessionError::Ended) => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
            let (_, client) = session.close().map_err(|e| e.to_string())?;
            client.finish().map_err(|e| e.to_string())?;
            Ok(())
        });
        let client = DealerClient::connect(Role::P1, p1_dealer).map_err(|e| e.to_string())?;
        let mut session = Session::connect(Role::P1, p1, client, &mut rng()?, SessionOptions::default())
            .map_err(|e| e.to_string())?;
        session.load(&config, preset, None, None).map_err(|e| e.to_string())?;
        let mut answers = Vec::new();
        for tokens in &queries {
            let answer = session.infer(Some(tokens), &mut Unobserved).map_err(|e| e.to_string())?;
            answers.push(answer.output.ok_or("P1 gets the answer")?);
        }
        session.close().map_err(|e| e.to_string())?;
        owner.join().map_err(|_| "P0 panicked")??;
        dealer.join().map_err(|_| "the dealer panicked")?.map_err(|e| e.to_string())?;
        Ok(answers)
    })?;

    // The same model in plaintext, for comparison.
    let mut plain = Plain::<f64>::new();
    let model = Encoder::load(&mut plain, &config, preset, Some(&params), None)?;
    let mut worst = 0f64;
    for (tokens, private) in queries.iter().zip(&answers) {
        let out = model.forward(&mut plain, Some(tokens), &vec![1.0; tokens.len()], &mut Unobserved)?;
        let reference = plain.reveal(&out)?;
        worst = worst.max(mpc_io_std::max_abs_diff(private, &reference));
        println!("{} tokens: private logits {private:.4?}, plaintext {reference:.4?}", tokens.len());
    }
    println!("max |private - plaintext| = {worst:.2e} over {} queries on one session", queries.len());
    if worst > 1e-2 {
        return Err(format!("private logits differ from plaintext by {worst}").into());
    }
    Ok(())
}
