//! Hugging Face BERT-family checkpoints: `config.json`, `model.safetensors` (with or without the
//! `bert.` / `roberta.` prefix) and `tokenizer.json` or `vocab.txt`.
//!
//! Everything read is untrusted: a missing file or tensor, a wrong shape or dtype, an unsupported
//! configuration value ends in a [`LoadError`] naming it, never a panic.

use std::fmt;
use std::path::{Path, PathBuf};

use mpc_transformer::{BertConfig, Params, Preset};
use safetensors::{Dtype, SafeTensors};
use tokenizers::Tokenizer;

/// Why a checkpoint could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// `config.json` is not valid JSON for a BERT-family configuration.
    Config(String),
    /// A configuration value this implementation does not support.
    Unsupported {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The safetensors file is malformed.
    Weights(String),
    /// A tensor has a dtype other than F32, F16 or BF16.
    Dtype {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// The tokenizer could not be built.
    Tokenizer(String),
    /// The checkpoint declares more than the configured limit.
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// Limits checked before anything of a checkpoint is loaded.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LoadLimits {
    /// The largest number of parameters a configuration may declare.
    pub max_parameters: u64,
    /// The largest safetensors file read.
    pub max_file_bytes: u64,
}

impl Default for LoadLimits {
    /// 2^31 parameters (8 GiB of f32), files of 16 GiB.
    fn default() -> Self {
        Self { max_parameters: 1 << 31, max_file_bytes: 16 << 30 }
    }
}

/// The parameters a BERT-family configuration declares, pooler included (saturating, for hostile
/// values).
pub fn declared_parameters(c: &BertConfig) -> u64 {
    let (h, i, v) = (c.hidden_size as u64, c.intermediate_size as u64, c.vocab_size as u64);
    let per_layer = (4u64.saturating_mul(h).saturating_mul(h))
        .saturating_add(2u64.saturating_mul(h).saturating_mul(i))
        .saturating_add(9u64.saturating_mul(h))
        .saturating_add(i);
    let embeddings =
        (v.saturating_add(c.max_position_embeddings as u64).saturating_add(c.type_vocab_size as u64)).saturating_mul(h);
    // The embeddings' LayerNorm (2h) and the pooler (h² + h) complete the count.
    let rest = h.saturating_mul(h).saturating_add(3u64.saturating_mul(h));
    embeddings.saturating_add(per_layer.saturating_mul(c.num_hidden_layers as u64)).saturating_add(rest)
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            LoadError::Config(e) => write!(f, "config.json: {e}"),
            LoadError::Unsupported { field, value } => write!(f, "config.json: `{field}` = {value} is not supported"),
            LoadError::Weights(e) => write!(f, "model.safetensors: {e}"),
            LoadError::Dtype { name, dtype } => {
                write!(f, "model.safetensors: tensor `{name}` is {dtype}, expected F32, F16 or BF16")
            }
            LoadError::Tokenizer(e) => write!(f, "tokenizer: {e}"),
            LoadError::TooLarge { what, size, limit } => write!(f, "{what} is {size}, above the limit of {limit}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|error| LoadError::Io { path: path.to_path_buf(), error })
}

/// The `config.json` field naming the preset a model was trained for (written by distillation).
pub const PRESET_FIELD: &str = "mpcformer_preset";

/// The preset `config.json` names in [`PRESET_FIELD`], if any.
pub fn parse_preset(json: &[u8]) -> Result<Option<Preset>, LoadError> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| LoadError::Config(e.to_string()))?;
    match value.get(PRESET_FIELD) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(Preset::parse)
            .map(Some)
            .ok_or_else(|| LoadError::Unsupported { field: PRESET_FIELD, value: v.to_string() }),
    }
}

/// The class names `config.json` gives in `id2label` (`{"0": "NEGATIVE", "1": "POSITIVE"}`), in
/// class order; `None` when absent, or when it does not name every class from 0 up exactly once.
pub fn parse_label_names(json: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let map = value.get("id2label")?.as_object()?;
    let mut names = vec![None; map.len()];
    for (id, name) in map {
        let slot = names.get_mut(id.parse::<usize>().ok()?)?;
        *slot = Some(name.as_str()?.to_string());
    }
    names.into_iter().collect()
}

/// Parses and checks a `config.json`.
pub fn parse_config(json: &[u8]) -> Result<BertConfig, LoadError> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| LoadError::Config(e.to_string()))?;
    let config: BertConfig = serde_json::from_value(value.clone()).map_err(|e| LoadError::Config(e.to_string()))?;
    if !matches!(config.model_type.as_str(), "bert" | "roberta") {
        return Err(LoadError::Unsupported { field: "model_type", value: config.model_type.clone() });
    }
    // `quad` and `relu` are the activations of distilled students.
    if !matches!(config.hidden_act.as_str(), "gelu" | "quad" | "relu") {
        return Err(LoadError::Unsupported { field: "hidden_act", value: config.hidden_act.clone() });
    }
    if let Some(kind) = value.get("position_embedding_type").and_then(|v| v.as_str())
        && kind != "absolute"
    {
        return Err(LoadError::Unsupported { field: "position_embedding_type", value: kind.to_string() });
    }
    config.validate().map_err(|e| LoadError::Config(e.to_string()))?;
    Ok(config)
}

/// Reads every F32 tensor of a safetensors file, without the `bert.` / `roberta.` prefix.
/// Integer buffers (`position_ids`) are skipped; any other dtype is an error naming the tensor.
pub fn parse_weights(bytes: &[u8]) -> Result<Params, LoadError> {
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| LoadError::Weights(e.to_string()))?;
    let mut params = Params::new();
    for (name, view) in tensors.iter() {
        let short = name.strip_prefix("bert.").or_else(|| name.strip_prefix("roberta.")).unwrap_or(name);
        match view.dtype() {
            Dtype::F32 => {
                let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                params.insert(short, view.shape().to_vec(), data);
            }
            // Half-precision checkpoints are widened at load time (exactly: every f16 and bf16
            // value is an f32 value).
            Dtype::F16 => {
                let data = view.data().chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect();
                params.insert(short, view.shape().to_vec(), data);
            }
            Dtype::BF16 => {
                let data = view
                    .data()
                    .chunks_exact(2)
                    .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16));
                params.insert(short, view.shape().to_vec(), data.collect());
            }
            Dtype::I64 | Dtype::I32 if short.ends_with("position_ids") || short.ends_with("token_type_ids") => {}
            other => return Err(LoadError::Dtype { name: name.to_string(), dtype: format!("{other:?}") }),
        }
    }
    Ok(params)
}

/// IEEE half precision to single, exactly (subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exponent = u32::from((h >> 10) & 0x1f);
    let mantissa = u32::from(h & 0x3ff);
    let bits = match (exponent, mantissa) {
        (0, 0) => sign,
        // Subnormal: value = mantissa · 2^-24, exact in f32.
        (0, m) => {
            let magnitude = m as f32 / 16_777_216.0;
            return if sign != 0 { -magnitude } else { magnitude };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// The tokenizer type of a [`Checkpoint`] (Hugging Face `tokenizers`).
pub type TextTokenizer = Tokenizer;

/// A tokenizer with padding off (MiniLM's `tokenizer.json` pads to 128) and truncation at `max`.
pub fn load_tokenizer(dir: &Path, max: usize) -> Result<Tokenizer, LoadError> {
    let json = dir.join("tokenizer.json");
    let mut tokenizer = if json.exists() {
        Tokenizer::from_file(&json).map_err(|e| LoadError::Tokenizer(e.to_string()))?
    } else {
        word_piece(&dir.join("vocab.txt"), lower_case(dir)?)?
    };
    tokenizer.with_padding(None);
    let truncation = tokenizers::TruncationParams { max_length: max, ..Default::default() };
    tokenizer.with_truncation(Some(truncation)).map_err(|e| LoadError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

/// Whether `tokenizer_config.json` asks for lower-casing (`do_lower_case`, true when absent: BERT's
/// uncased default).
fn lower_case(dir: &Path) -> Result<bool, LoadError> {
    let path = dir.join("tokenizer_config.json");
    if !path.exists() {
        return Ok(true);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&read(&path)?).map_err(|e| LoadError::Tokenizer(format!("{}: {e}", path.display())))?;
    match json.get("do_lower_case") {
        None => Ok(true),
        Some(v) => v.as_bool().ok_or_else(|| LoadError::Tokenizer(format!("do_lower_case is {v}, not a boolean"))),
    }
}

/// BERT's WordPiece tokenizer from a `vocab.txt`, lower-casing (and stripping accents) if asked.
fn word_piece(vocab: &Path, lower_case: bool) -> Result<Tokenizer, LoadError> {
    use tokenizers::Model;
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;

    let path = vocab.to_str().ok_or_else(|| LoadError::Tokenizer("vocabulary path is not UTF-8".into()))?;
    let model = WordPiece::from_file(path)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| LoadError::Tokenizer(format!("{}: {e}", vocab.display())))?;
    let id = |t: &str| model.token_to_id(t).ok_or_else(|| LoadError::Tokenizer(format!("vocabulary has no {t}")));
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lower_case)))
        .map_err(|e| LoadError::Tokenizer(e.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
    Ok(tokenizer)
}

/// A checkpoint: its configuration (with `num_labels` set when it has a classifier), its
/// parameters and its tokenizer.
pub struct Checkpoint {
    /// The shape.
    pub config: BertConfig,
    /// The model owner's tensors.
    pub params: Params,
    /// The data owner's tokenizer.
    pub tokenizer: Tokenizer,
    /// The preset the model was trained for ([`PRESET_FIELD`]), if config.json names one.
    pub preset: Option<Preset>,
    /// The class names (config.json's `id2label`), when it gives one per class.
    pub label_names: Option<Vec<String>>,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Loads a checkpoint directory within the default [`LoadLimits`].
pub fn load(dir: &Path) -> Result<Checkpoint, LoadError> {
    load_within(dir, LoadLimits::default())
}

/// Loads a checkpoint directory, refusing one whose configuration or weight file exceeds
/// `limits` before reading the weights.
pub fn load_within(dir: &Path, limits: LoadLimits) -> Result<Checkpoint, LoadError> {
    let json = read(&dir.join("config.json"))?;
    let (mut config, preset) = (parse_config(&json)?, parse_preset(&json)?);
    let declared = declared_parameters(&config);
    if declared > limits.max_parameters {
        return Err(LoadError::TooLarge {
            what: "the declared parameter count",
            size: declared,
            limit: limits.max_parameters,
        });
    }
    let weights = dir.join("model.safetensors");
    if !weights.exists() && dir.join("pytorch_model.bin").exists() {
        return Err(LoadError::Weights(format!(
            "{} has only pytorch_model.bin (a pickle, which this loader does not execute); convert it once with \
             `python3 -c \"import torch, safetensors.torch as st; st.save_file({{k: v.contiguous() for k, v in \
             torch.load('pytorch_model.bin', map_location='cpu').items()}}, 'model.safetensors')\"` in that folder",
            dir.display()
        )));
    }
    let size = std::fs::metadata(&weights).map_err(|error| LoadError::Io { path: weights.clone(), error })?.len();
    if size > limits.max_file_bytes {
        return Err(LoadError::TooLarge { what: "model.safetensors", size, limit: limits.max_file_bytes });
    }
    let params = parse_weights(&read(&weights)?)?;
    config.num_labels = params.iter().find(|(n, _)| n.as_str() == "classifier.weight").map(|(_, p)| p.shape[0]);
    let max = config.max_tokens();
    let tokenizer = load_tokenizer(dir, max)?;
    let label_names = parse_label_names(&json).filter(|names| Some(names.len()) == config.num_labels);
    Ok(Checkpoint { config, params, tokenizer, preset, label_names })
}

/// What the data owner needs of a checkpoint: its public configuration and its tokenizer, never
/// its weights. The head comes from `num_labels` in config.json, or else from the classifier's
/// shape in the safetensors header when the file is at hand (the header only, no tensor data).
pub fn load_public(dir: &Path) -> Result<Checkpoint, LoadError> {
    let json = read(&dir.join("config.json"))?;
    let (mut config, preset) = (parse_config(&json)?, parse_preset(&json)?);
    let weights = dir.join("model.safetensors");
    if config.num_labels.is_none() && weights.exists() {
        let mut file = std::fs::File::open(&weights).map_err(|error| LoadError::Io { path: weights.clone(), error })?;
        let mut len = [0u8; 8];
        std::io::Read::read_exact(&mut file, &mut len)
            .map_err(|error| LoadError::Io { path: weights.clone(), error })?;
        let len = u64::from_le_bytes(len);
        if len > 100 << 20 {
            return Err(LoadError::Weights(format!("header of {len} bytes")));
        }
        let mut header = vec![0u8; len as usize];
        std::io::Read::read_exact(&mut file, &mut header)
            .map_err(|error| LoadError::Io { path: weights.clone(), error })?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|e| LoadError::Weights(e.to_string()))?;
        let classifier = ["classifier.weight", "bert.classifier.weight", "roberta.classifier.weight"]
            .iter()
            .find_map(|name| header.get(*name))
            .and_then(|t| t.get("shape")?.get(0)?.as_u64());
        config.num_labels = classifier.map(|rows| rows as usize);
    }
    let max = config.max_tokens();
    let tokenizer = load_tokenizer(dir, max)?;
    let label_names = parse_label_names(&json).filter(|names| Some(names.len()) == config.num_labels);
    Ok(Checkpoint { config, params: Params::new(), tokenizer, preset, label_names })
}

impl Checkpoint {
    /// The name of class `index` (config.json's `id2label`), else the index itself.
    pub fn label_name(&self, index: usize) -> String {
        self.label_names.as_ref().and_then(|names| names.get(index).cloned()).unwrap_or_else(|| index.to_string())
    }

    /// Token ids of `text` (with the special tokens), as the data owner computes them.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, LoadError> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| LoadError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}

/// Writes a checkpoint folder that [`load`] reads back: `config.json` (with `preset` as
/// [`PRESET_FIELD`] when given), `model.safetensors` (F32, names under `bert.`) and `vocab.txt`
/// (`words`, one per line).
pub fn write_checkpoint(
    dir: &Path,
    config: &BertConfig,
    params: &Params,
    preset: Option<Preset>,
    words: &[String],
) -> Result<(), LoadError> {
    let io = |path: PathBuf| move |error| LoadError::Io { path, error };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let mut json = serde_json::to_value(config).map_err(|e| LoadError::Config(e.to_string()))?;
    if let Some(map) = json.as_object_mut() {
        if let Some(preset) = preset {
            map.insert(PRESET_FIELD.into(), preset.name().into());
        }
        // Hugging Face's default class names.
        if let Some(labels) = config.num_labels {
            let names = (0..labels).map(|i| (i.to_string(), serde_json::Value::from(format!("LABEL_{i}"))));
            map.insert("id2label".into(), names.collect());
        }
    }
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).expect("a JSON value")).map_err(io(path))?;
    let path = dir.join("vocab.txt");
    std::fs::write(&path, words.join("\n")).map_err(io(path))?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, p)| {
            (format!("bert.{name}"), p.shape.clone(), p.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| LoadError::Weights(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))
        .map_err(|e| LoadError::Weights(e.to_string()))
}

/// A checkpoint of `config`'s shape with random weights (normal, standard deviation `std`,
/// from `seed`) and a vocabulary of `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, then `w4`, `w5`, ...:
/// for trying the commands and measuring memory and time at full scale without a download.
pub fn write_random_checkpoint(
    dir: &Path,
    config: &BertConfig,
    preset: Option<Preset>,
    seed: u64,
    std: f32,
) -> Result<(), LoadError> {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let words: Vec<String> = (0..config.vocab_size.max(specials.len()))
        .map(|i| specials.get(i).map_or_else(|| format!("w{i}"), |s| s.to_string()))
        .collect();
    let params = Params::random_with_std(config, seed, std);
    write_checkpoint(dir, config, &params, preset, &words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_configurations_are_named() {
        let err = parse_config(br#"{"hidden_act": "swish"}"#).unwrap_err();
        assert!(err.to_string().contains("hidden_act"), "{err}");
        let err = parse_config(br#"{"position_embedding_type": "relative_key"}"#).unwrap_err();
        assert!(err.to_string().contains("position_embedding_type"), "{err}");
        let err = parse_config(br#"{"model_type": "gpt2"}"#).unwrap_err();
        assert!(err.to_string().contains("model_type"), "{err}");
        let err = parse_config(br#"{"hidden_size": 10, "num_attention_heads": 3}"#).unwrap_err();
        assert!(err.to_string().contains("multiple"), "{err}");
        assert!(parse_config(b"not json").is_err());
        assert_eq!(parse_preset(br#"{"mpcformer_preset": "quad+2quad"}"#).unwrap(), Preset::parse("quad+2quad"));
        assert_eq!(parse_preset(b"{}").unwrap(), None);
        let err = parse_preset(br#"{"mpcformer_preset": "cubic+3quad"}"#).unwrap_err();
        assert!(err.to_string().contains("mpcformer_preset"), "{err}");
        let ok = parse_config(br#"{"hidden_size": 384, "num_hidden_layers": 6, "extra": [1, 2]}"#).unwrap();
        assert_eq!((ok.hidden_size, ok.num_hidden_layers, ok.vocab_size), (384, 6, 30522));
    }

    fn safetensors_file(tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            let start = data.len();
            data.extend_from_slice(bytes);
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
            );
        }
        let header = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header);
        out.extend(data);
        out
    }

    #[test]
    fn weights_lose_their_prefix_and_keep_their_values() {
        let values: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let ids: Vec<u8> = [0i64, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let file = safetensors_file(&[
            ("bert.pooler.dense.bias", "F32", vec![2], values),
            ("bert.embeddings.position_ids", "I64", vec![1, 2], ids),
        ]);
        let params = parse_weights(&file).unwrap();
        assert_eq!(params.get("pooler.dense.bias", &[2]).unwrap(), &[1.5, -2.0]);
        assert!(!params.contains("embeddings.position_ids"));
        assert!(params.get("pooler.dense.bias", &[3]).unwrap_err().to_string().contains("pooler.dense.bias"));
    }

    #[test]
    fn a_vocab_file_makes_a_bert_tokenizer() {
        let dir = std::env::temp_dir().join(format!("mpcformer-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n##s\n!\n").unwrap();
        let tokenizer = load_tokenizer(&dir, 16).unwrap();
        let ids = tokenizer.encode("Hello worlds! Xyz", true).unwrap().get_ids().to_vec();
        assert_eq!(ids, [2, 4, 5, 6, 7, 1, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn declared_sizes_beyond_the_limits_are_refused_before_loading() {
        let dir = std::env::temp_dir().join(format!("mpcformer-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A huge declared model, and no weight file at all: the refusal comes first.
        std::fs::write(
            dir.join("config.json"),
            r#"{"hidden_size": 65536, "num_attention_heads": 16, "intermediate_size": 262144}"#,
        )
        .unwrap();
        let err = load(&dir).unwrap_err();
        assert!(matches!(err, LoadError::TooLarge { what: "the declared parameter count", .. }), "{err}");
        assert_eq!(declared_parameters(&BertConfig::bert_base()), 109_482_240, "BERT-base, pooler included");
        std::fs::write(dir.join("config.json"), r#"{"hidden_size": 32, "num_attention_heads": 4}"#).unwrap();
        std::fs::write(dir.join("model.safetensors"), [0u8; 64]).unwrap();
        let tight = LoadLimits { max_file_bytes: 63, ..LoadLimits::default() };
        assert!(matches!(load_within(&dir, tight).unwrap_err(), LoadError::TooLarge { what: "model.safetensors", .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_files_never_panic_the_parsers(bytes: Vec<u8>) {
            let _ = parse_config(&bytes);
            let _ = parse_weights(&bytes);
        }

        #[test]
        fn safetensors_headers_with_lying_offsets_are_refused(
            shape in proptest::prop_oneof![0usize..16, 16usize..1_000_000],
            lie in -5i64..4,
        ) {
            // Offsets that match the shape (lie = 0, about one case in nine) are accepted; any
            // other length, short or long, is refused.
            let len = (4 * shape as i64 + lie).clamp(0, 64) as u64;
            let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{shape}],"data_offsets":[0,{len}]}}}}"#);
            let mut file = (header.len() as u64).to_le_bytes().to_vec();
            file.extend(header.as_bytes());
            file.extend(vec![0u8; len as usize]);
            let parsed = parse_weights(&file);
            proptest::prop_assert_eq!(parsed.is_ok(), shape * 4 == len as usize, "{:?}", parsed.err());
        }
    }

    #[test]
    fn label_names_come_from_id2label_in_class_order() {
        let json = br#"{"id2label": {"1": "POSITIVE", "0": "NEGATIVE"}}"#;
        assert_eq!(parse_label_names(json), Some(vec!["NEGATIVE".to_string(), "POSITIVE".to_string()]));
        assert_eq!(parse_label_names(br#"{"id2label": {"0": "A", "2": "C"}}"#), None, "a gap");
        assert_eq!(parse_label_names(br#"{"id2label": {"x": "A"}}"#), None);
        assert_eq!(parse_label_names(b"{}"), None);
    }

    #[test]
    fn half_precision_tensors_widen_exactly() {
        // f16: 1, -2, 0.5, the largest normal 65504, the smallest subnormal 2^-24, -0, inf.
        let f16: [u16; 7] = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00];
        let bytes: Vec<u8> = f16.iter().flat_map(|h| h.to_le_bytes()).collect();
        let params = parse_weights(&safetensors_file(&[("bert.h", "F16", vec![7], bytes)])).unwrap();
        let got = params.get("h", &[7]).unwrap();
        assert_eq!(&got[..6], &[1.0, -2.0, 0.5, 65504.0, 2f32.powi(-24), -0.0]);
        assert!(got[6].is_infinite() && got[5].is_sign_negative());
        assert!(f16_to_f32(0x7e00).is_nan());
        // bf16: the top half of an f32.
        let bf16: Vec<u8> =
            [1.5f32, -3.25, 1e30].iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect();
        let params = parse_weights(&safetensors_file(&[("b", "BF16", vec![3], bf16)])).unwrap();
        let got = params.get("b", &[3]).unwrap();
        assert_eq!(&got[..2], &[1.5, -3.25]);
        assert!((got[2] / 1e30 - 1.0).abs() < 1e-2);
    }

    #[test]
    fn the_vocabulary_fallback_honours_do_lower_case() {
        let dir = std::env::temp_dir().join(format!("mpcformer-cased-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nHello\nhello\n").unwrap();
        let ids = |dir: &Path| load_tokenizer(dir, 16).unwrap().encode("Hello", true).unwrap().get_ids().to_vec();
        assert_eq!(ids(&dir), [2, 5, 3], "uncased by default");
        std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": false}"#).unwrap();
        assert_eq!(ids(&dir), [2, 4, 3], "cased when the config says so");
        std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": "no"}"#).unwrap();
        assert!(load_tokenizer(&dir, 16).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_with_only_pytorch_weights_says_how_to_convert() {
        let dir = std::env::temp_dir().join(format!("mpcformer-pickle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("pytorch_model.bin"), [0u8; 16]).unwrap();
        let err = load(&dir).unwrap_err().to_string();
        assert!(err.contains("pytorch_model.bin") && err.contains("safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_weights_are_refused_with_a_reason() {
        let double = safetensors_file(&[("x", "F64", vec![1], vec![0; 8])]);
        assert!(parse_weights(&double).unwrap_err().to_string().contains("`x` is F64"));
        assert!(parse_weights(b"\x08\x00\x00\x00\x00\x00\x00\x00{}").is_err());
        assert!(parse_weights(&[0xff; 16]).is_err());
        assert!(parse_weights(&[]).is_err());
    }
}
