//! Model configuration with Hugging Face's `config.json` field names.

use alloc::string::String;

use serde::{Deserialize, Serialize};

/// A BERT-family encoder's shape, read from a Hugging Face `config.json` (unknown fields are
/// ignored by serde; missing ones take BERT's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    /// `bert`, `roberta`, ...
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width h.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (h must be a multiple).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// The feed-forward activation of the trained model (`gelu` is erf GeLU).
    pub hidden_act: String,
    /// Positions the position table holds.
    pub max_position_embeddings: usize,
    /// Segment types.
    pub type_vocab_size: usize,
    /// LayerNorm's epsilon.
    pub layer_norm_eps: f64,
    /// The padding token.
    pub pad_token_id: usize,
    /// Labels of a classification head, if the checkpoint has one.
    pub num_labels: Option<usize>,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self::bert_base()
    }
}

impl BertConfig {
    /// BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072.
    pub fn bert_base() -> Self {
        Self {
            model_type: String::from("bert"),
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: String::from("gelu"),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            num_labels: None,
        }
    }

    /// BERT-large: 24 layers, hidden 1024, 16 heads, FFN 4096.
    pub fn bert_large() -> Self {
        Self {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            ..Self::bert_base()
        }
    }

    /// MiniLM-L6-H384 (all-MiniLM-L6-v2): 6 layers, hidden 384, 12 heads, FFN 1536.
    pub fn minilm_l6() -> Self {
        Self { hidden_size: 384, num_hidden_layers: 6, intermediate_size: 1536, ..Self::bert_base() }
    }

    /// A small random-weight configuration for tests.
    pub fn tiny(layers: usize, hidden: usize, heads: usize, vocab: usize) -> Self {
        Self {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: 4 * hidden,
            max_position_embeddings: 64,
            ..Self::bert_base()
        }
    }

    /// A named configuration: `bert-base`, `bert-large`, `minilm`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "bert-base" => Some(Self::bert_base()),
            "bert-large" => Some(Self::bert_large()),
            "minilm" | "minilm-l6" => Some(Self::minilm_l6()),
            _ => None,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// The position id of the first token: RoBERTa counts positions from `pad_token_id + 1`.
    pub fn position_offset(&self) -> usize {
        if self.model_type == "roberta" { self.pad_token_id + 1 } else { 0 }
    }

    /// The most tokens an input may have: the position table's rows from the first position id
    /// ([`BertConfig::position_offset`]) on; 0 for a table too small for its offset.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.position_offset())
    }

    /// Checks the shape is usable: heads divide the width, sizes are non-zero.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.hidden_size == 0 || self.num_attention_heads == 0 || self.vocab_size == 0 {
            return Err("sizes must be non-zero");
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err("hidden_size must be a multiple of num_attention_heads");
        }
        if self.max_position_embeddings <= self.position_offset() {
            return Err("max_position_embeddings too small for the position offset");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest input: every position of BERT's table; RoBERTa's from its padding id + 1 on;
    /// none for a table no larger than its offset (refused by `validate` too).
    #[test]
    fn max_tokens_counts_the_positions_from_the_first_id() {
        assert_eq!(BertConfig::bert_base().max_tokens(), 512);
        let roberta = BertConfig {
            model_type: "roberta".into(),
            max_position_embeddings: 514,
            pad_token_id: 1,
            ..BertConfig::bert_base()
        };
        assert_eq!(roberta.max_tokens(), 512);
        let cramped = BertConfig { max_position_embeddings: 2, ..roberta };
        assert_eq!(cramped.max_tokens(), 0);
        assert!(cramped.validate().is_err());
    }
}
