//! What the commands compute: each task returns a report that serialises to its command's JSON
//! line (speed targets are checked by these benchmarks, never by timed tests).

pub mod accuracy;
pub mod bench;
pub mod demo;
pub mod eval;
pub mod gemm;
pub mod infer;
pub mod soak;
