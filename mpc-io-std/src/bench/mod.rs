//! Benchmarks that print numbers (speed targets are checked here, never by timed tests).

pub mod gemm;
pub mod model;
