//! `mpcformer accuracy`: every numerical function and comparison, computed by the real protocol
//! over threads, against f64.

use mpc_core::Error;
use mpc_core::protocol::Truncation;
use mpc_core::transport::{CommStats, Role};
use mpc_nn::{Backend, Plain, Secure, Spread};
use serde::Serialize;

use crate::run::threads::{LaunchError, LaunchOptions, run_threaded};

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct AccuracyRow {
    /// The function.
    pub function: &'static str,
    /// The inputs it was measured on.
    pub domain: &'static str,
    /// Largest |private - f64| over the inputs.
    pub max_abs_err: f64,
    /// Largest |private - f64| / |f64| over the inputs whose reference is at least
    /// [`REL_FLOOR`] in magnitude (below it, one unit of the last place dominates).
    pub max_rel_err: f64,
    /// Rounds of one call (the larger of the two parties' counts).
    pub rounds: u64,
    /// Bytes both parties sent, per input element.
    pub bytes_per_element: f64,
    /// Input elements.
    pub elements: usize,
    /// The session's truncation method.
    pub truncation: &'static str,
    /// Each input element and its |private - f64| (for plots; not in the JSON line).
    #[serde(skip)]
    pub errors: Vec<(f64, f64)>,
}

/// References smaller than this (2^-6, a thousand units of the last place at 16 fractional
/// bits) are left out of the relative error.
pub const REL_FLOOR: f64 = 1.0 / 64.0;

/// Half a unit of the last place at 16 fractional bits: how far encoding moves an input, and so
/// the error of the exact functions (ReLU, max) against f64.
pub const INPUT_ROUNDING: f64 = 1.0 / 131_072.0;

/// What a row function is applied to: rows of these lengths, entries in [-50, 50].
pub const ROW_LENGTHS: [usize; 3] = [8, 64, 512];

/// A function of the table: its name, domain, inputs and how to call it on any backend.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The function's name in the table.
    pub function: &'static str,
    /// The domain, in words.
    pub domain: &'static str,
    /// The bound the tests hold it to (absolute, or relative for reciprocal and inv_sqrt): about
    /// three times the largest error measured with either truncation, and the bound its doc
    /// comment states.
    pub bound: f64,
    /// Whether `bound` is relative.
    pub relative: bool,
    /// The rounds of one call with dealer truncation (the default of the table), as stated in
    /// the docs; the tests hold the protocol to them.
    pub rounds: u64,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Elementwise { lo: f64, hi: f64, n: usize, log: bool },
    Rows,
}

/// The table's functions.
pub const SPECS: [Spec; 15] = [
    Spec {
        function: "reciprocal",
        domain: "[1/64, 64]",
        bound: 1e-3,
        relative: true,
        rounds: 8,
        kind: Kind::Elementwise { lo: 1.0 / 64.0, hi: 64.0, n: 2000, log: true },
    },
    Spec {
        function: "inv_sqrt",
        domain: "[1e-2, 1e3]",
        bound: 1e-3,
        relative: true,
        rounds: 5,
        kind: Kind::Elementwise { lo: 1e-2, hi: 1e3, n: 2000, log: true },
    },
    Spec {
        function: "exp",
        domain: "[-64, 0]",
        bound: 8e-5,
        relative: false,
        rounds: 14,
        kind: Kind::Elementwise { lo: -64.0, hi: 0.0, n: 2000, log: false },
    },
    Spec {
        function: "gelu",
        domain: "[-1e3, 1e3]",
        bound: 2e-4,
        relative: false,
        rounds: 8,
        kind: Kind::Elementwise { lo: -1e3, hi: 1e3, n: 4000, log: false },
    },
    Spec {
        function: "gelu_core",
        domain: "[-8, 8]",
        bound: 2e-4,
        relative: false,
        rounds: 8,
        kind: Kind::Elementwise { lo: -8.0, hi: 8.0, n: 2000, log: false },
    },
    Spec {
        function: "quad",
        domain: "[-10, 10]",
        bound: 1e-4,
        relative: false,
        rounds: 2,
        kind: Kind::Elementwise { lo: -10.0, hi: 10.0, n: 2000, log: false },
    },
    Spec {
        function: "erf",
        domain: "[-10, 10]",
        bound: 1.5e-4,
        relative: false,
        rounds: 9,
        kind: Kind::Elementwise { lo: -10.0, hi: 10.0, n: 2000, log: false },
    },
    Spec {
        function: "tanh",
        domain: "[-10, 10]",
        bound: 2.2e-4,
        relative: false,
        rounds: 28,
        kind: Kind::Elementwise { lo: -10.0, hi: 10.0, n: 2000, log: false },
    },
    Spec {
        function: "sigmoid",
        domain: "[-20, 20]",
        bound: 1.1e-4,
        relative: false,
        rounds: 28,
        kind: Kind::Elementwise { lo: -20.0, hi: 20.0, n: 2000, log: false },
    },
    Spec {
        function: "softmax",
        domain: "rows of 8, 64, 512 in [-50, 50]",
        bound: 9e-5,
        relative: false,
        rounds: 57,
        kind: Kind::Rows,
    },
    Spec {
        function: "2quad",
        domain: "rows of 8, 64, 512 in [-50, 50]",
        bound: 4.5e-5,
        relative: false,
        rounds: 10,
        kind: Kind::Rows,
    },
    Spec {
        function: "2relu",
        domain: "rows of 8, 64, 512 in [-50, 50]",
        bound: 4.5e-5,
        relative: false,
        rounds: 13,
        kind: Kind::Rows,
    },
    Spec {
        function: "ltz",
        domain: "[-1e3, 1e3]",
        bound: 0.0,
        relative: false,
        rounds: 5,
        kind: Kind::Elementwise { lo: -1e3, hi: 1e3, n: 2000, log: false },
    },
    Spec {
        function: "relu",
        domain: "[-1e3, 1e3]",
        bound: INPUT_ROUNDING,
        relative: false,
        rounds: 5,
        kind: Kind::Elementwise { lo: -1e3, hi: 1e3, n: 2000, log: false },
    },
    Spec {
        function: "max",
        domain: "rows of 8, 64, 512 in [-50, 50]",
        bound: INPUT_ROUNDING,
        relative: false,
        rounds: 36,
        kind: Kind::Rows,
    },
];

impl Spec {
    /// The inputs: a grid over the domain (geometric for positive domains), or rows.
    pub fn inputs(&self) -> Vec<Vec<f64>> {
        match self.kind {
            Kind::Elementwise { lo, hi, n, log } => vec![
                (0..n)
                    .map(|i| {
                        let t = i as f64 / (n - 1) as f64;
                        if log { lo * (hi / lo).powf(t) } else { lo + (hi - lo) * t }
                    })
                    .collect(),
            ],
            Kind::Rows => ROW_LENGTHS
                .iter()
                .map(|&len| {
                    (0..4 * len).map(|i| ((i * 7919 + len) % 10_007) as f64 / 10_006.0 * 100.0 - 50.0).collect()
                })
                .collect(),
        }
    }

    /// Applies the function to `x`, which holds one input set (`len` per row for row functions).
    pub fn apply<B: Backend + ?Sized>(&self, b: &mut B, x: &[B::Elem], len: usize) -> Result<B::Vector, Error> {
        let rows = x.len() / len;
        match self.function {
            "reciprocal" => b.reciprocal(x),
            "inv_sqrt" => b.inv_sqrt(x),
            "exp" => b.exp(x),
            "gelu" | "gelu_core" => b.gelu(x),
            "erf" => b.erf(x),
            "quad" => b.quad(x),
            "tanh" => b.tanh(x),
            "sigmoid" => b.sigmoid(x),
            "softmax" => b.softmax(x, rows, len, None),
            "2quad" => b.two_quad(x, rows, len, None),
            "2relu" => b.two_relu(x, rows, len, None),
            "ltz" => b.ltz(x).map(|bits| b.mul_bits_public(&bits, &vec![1.0; bits.len()], b.frac_bits())),
            "relu" => b.relu(x),
            "max" => b.max_rows(x, rows, len, Spread::ACTIVATIONS),
            other => unreachable!("unknown function {other}"),
        }
    }

    /// Entries per row of an input set (1 for elementwise functions).
    pub fn row_len(&self, input: &[f64]) -> usize {
        match self.kind {
            Kind::Rows => input.len() / 4,
            Kind::Elementwise { .. } => 1,
        }
    }
}

/// One function's private outputs (one vector per input set) and the traffic of each call at
/// P0 and P1.
#[derive(Clone, Debug)]
pub struct SecureRun {
    /// Revealed outputs, one vector per input set of [`Spec::inputs`].
    pub outputs: Vec<Vec<f64>>,
    /// Traffic of each call: (P0's, P1's).
    pub costs: Vec<(CommStats, CommStats)>,
}

/// Runs one function over threads with the real dealer (P1 inputs the values, both reveal).
pub fn run_secure(spec: &Spec, truncation: Truncation, seed: Option<u64>) -> Result<SecureRun, LaunchError> {
    let inputs = spec.inputs();
    let options = seed.map(LaunchOptions::seeded).unwrap_or_default();
    let run = run_threaded(options, |ctx| {
        let role = ctx.role;
        let party = ctx.party()?.with_truncation(truncation);
        let mut b = Secure::new(party);
        let mut outputs = Vec::new();
        for input in &inputs {
            let x = b.input(Role::P1, (role == Role::P1).then_some(&input[..]), input.len())?;
            b.reveal(&[0])?; // a barrier: the call's rounds start from a clean flight
            let before = b.party().transport().stats();
            let y = spec.apply(&mut b, &x, spec.row_len(input))?;
            let cost = b.party().transport().stats().since(&before);
            outputs.push((b.reveal(&y)?, cost));
        }
        Ok(outputs)
    })?;
    let (outputs, p0_costs): (Vec<_>, Vec<_>) = run.p0.output.into_iter().unzip();
    let p1_costs = run.p1.output.into_iter().map(|(_, c)| c);
    Ok(SecureRun { outputs, costs: p0_costs.into_iter().zip(p1_costs).collect() })
}

/// The plaintext f64 reference of one function on its inputs.
pub fn reference(spec: &Spec) -> Vec<Vec<f64>> {
    spec.inputs()
        .iter()
        .map(|input| spec.apply(&mut Plain::<f64>::new(), input, spec.row_len(input)).expect("plain reference"))
        .collect()
}

/// Runs one function over threads with the real dealer; returns its table line.
pub fn measure(spec: &Spec, truncation: Truncation, seed: Option<u64>) -> Result<AccuracyRow, LaunchError> {
    let run = run_secure(spec, truncation, seed)?;
    let worse = crate::worse_error;
    let inputs = spec.inputs();
    let (mut max_abs, mut max_rel, mut errors) = (0.0f64, 0.0f64, Vec::new());
    for ((got, expect), input) in run.outputs.iter().zip(reference(spec)).zip(&inputs) {
        if got.len() != expect.len() {
            max_abs = f64::INFINITY;
        }
        // Elementwise and row-normalising functions: plotted against their input; a reduction
        // (max of a row): against its row's index.
        let elementwise = got.len() == input.len();
        for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
            max_abs = worse(max_abs, (g - e).abs());
            if e.abs() >= REL_FLOOR || e.is_nan() {
                max_rel = worse(max_rel, ((g - e) / e).abs());
            }
            errors.push((if elementwise { input[i] } else { i as f64 }, (g - e).abs()));
        }
    }
    let rounds = run.costs.iter().map(|(p0, p1)| p0.rounds.max(p1.rounds)).max().unwrap_or(0);
    let bytes: u64 = run.costs.iter().map(|(p0, p1)| p0.bytes_sent + p1.bytes_sent).sum();
    let elements: usize = inputs.iter().map(Vec::len).sum();
    Ok(AccuracyRow {
        function: spec.function,
        domain: spec.domain,
        max_abs_err: max_abs,
        max_rel_err: max_rel,
        rounds,
        bytes_per_element: bytes as f64 / elements as f64,
        elements,
        truncation: truncation.name(),
        errors,
    })
}
