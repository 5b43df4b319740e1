//! MPCFormer's approximation presets: which activation and which attention normaliser.

use alloc::string::String;

pub use mpc_nn::layers::{Activation, Normaliser};
use serde::{Deserialize, Serialize};

/// An activation and an attention normaliser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    /// The feed-forward activation.
    pub activation: Activation,
    /// The attention normaliser.
    pub attention: Normaliser,
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Gelu => "gelu",
        Activation::Quad => "quad",
        Activation::Relu => "relu",
    }
}

fn normaliser_name(n: Normaliser) -> &'static str {
    match n {
        Normaliser::Softmax => "softmax",
        Normaliser::TwoQuad => "2quad",
        Normaliser::TwoRelu => "2relu",
    }
}

impl Preset {
    /// MPCFormer's presets: `gelu+softmax` (the original model), `quad+2quad`, `quad+2relu`,
    /// `gelu+2quad`, `quad+softmax`.
    pub const ALL: [Preset; 5] = [
        Preset { activation: Activation::Gelu, attention: Normaliser::Softmax },
        Preset { activation: Activation::Quad, attention: Normaliser::TwoQuad },
        Preset { activation: Activation::Quad, attention: Normaliser::TwoRelu },
        Preset { activation: Activation::Gelu, attention: Normaliser::TwoQuad },
        Preset { activation: Activation::Quad, attention: Normaliser::Softmax },
    ];

    /// The preset's name, e.g. `quad+2quad`.
    pub fn name(&self) -> String {
        let mut s = String::from(activation_name(self.activation));
        s.push('+');
        s.push_str(normaliser_name(self.attention));
        s
    }

    /// Parses a name such as `quad+2quad` (any activation with any normaliser).
    pub fn parse(name: &str) -> Option<Preset> {
        let (act, att) = name.split_once('+')?;
        let activation =
            [Activation::Gelu, Activation::Quad, Activation::Relu].into_iter().find(|a| activation_name(*a) == act)?;
        let attention = [Normaliser::Softmax, Normaliser::TwoQuad, Normaliser::TwoRelu]
            .into_iter()
            .find(|n| normaliser_name(*n) == att)?;
        Some(Preset { activation, attention })
    }
}

impl core::fmt::Display for Preset {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Preset::ALL {
            assert_eq!(Preset::parse(&p.name()), Some(p));
        }
        assert_eq!(Preset::parse("quad+2quad").unwrap().attention, Normaliser::TwoQuad);
        assert_eq!(Preset::parse("quad"), None);
        assert_eq!(Preset::parse("cubic+softmax"), None);
    }
}
