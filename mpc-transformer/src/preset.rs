//! MPCFormer's approximation presets: which activation and which attention normaliser.

use serde::{Deserialize, Serialize};

/// The feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// erf GeLU (BERT's).
    Gelu,
    /// MPCFormer's Quad: 0.125x² + 0.25x + 0.5.
    Quad,
}

/// The attention normaliser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attention {
    /// Softmax.
    Softmax,
    /// MPCFormer's 2Quad: (x + 5)² over its row sum.
    TwoQuad,
    /// MPCFormer's 2ReLU: relu(x) over its row sum.
    TwoRelu,
}

/// An activation and an attention normaliser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    /// The feed-forward activation.
    pub activation: Activation,
    /// The attention normaliser.
    pub attention: Attention,
}

impl Preset {
    /// Every preset: `gelu+softmax` (the original model), `quad+2quad`, `quad+2relu`,
    /// `gelu+2quad`, `quad+softmax`.
    pub const ALL: [Preset; 5] = [
        Preset { activation: Activation::Gelu, attention: Attention::Softmax },
        Preset { activation: Activation::Quad, attention: Attention::TwoQuad },
        Preset { activation: Activation::Quad, attention: Attention::TwoRelu },
        Preset { activation: Activation::Gelu, attention: Attention::TwoQuad },
        Preset { activation: Activation::Quad, attention: Attention::Softmax },
    ];

    /// The preset's name, e.g. `quad+2quad`.
    pub const fn name(&self) -> &'static str {
        match (self.activation, self.attention) {
            (Activation::Gelu, Attention::Softmax) => "gelu+softmax",
            (Activation::Quad, Attention::TwoQuad) => "quad+2quad",
            (Activation::Quad, Attention::TwoRelu) => "quad+2relu",
            (Activation::Gelu, Attention::TwoQuad) => "gelu+2quad",
            (Activation::Quad, Attention::Softmax) => "quad+softmax",
            (Activation::Gelu, Attention::TwoRelu) => "gelu+2relu",
        }
    }

    /// Parses a name such as `quad+2quad`.
    pub fn parse(name: &str) -> Option<Preset> {
        let (act, att) = name.split_once('+')?;
        let activation = match act {
            "gelu" => Activation::Gelu,
            "quad" => Activation::Quad,
            _ => return None,
        };
        let attention = match att {
            "softmax" => Attention::Softmax,
            "2quad" => Attention::TwoQuad,
            "2relu" => Attention::TwoRelu,
            _ => return None,
        };
        Some(Preset { activation, attention })
    }
}

impl core::fmt::Display for Preset {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
