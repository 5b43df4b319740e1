//! Transports: how the parties and the dealer reach each other.

pub mod channel;
pub mod shaping;
pub mod tcp;
