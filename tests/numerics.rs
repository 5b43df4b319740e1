//! Every function of the accuracy table, by the real protocol over threads with the real dealer:
//! within its stated bound of f64, in its stated number of rounds, and within a few units of
//! the simulated setting (which runs the same algorithm).

use mpc_core::protocol::Truncation;
use mpc_io_std::tasks::accuracy::{self, SPECS};
use mpc_nn::{Backend, Fixed};

#[test]
fn every_function_meets_its_bound_in_its_rounds() {
    for spec in &SPECS {
        let row = accuracy::measure(spec, Truncation::Dealer, Some(7)).expect("run");
        let err = if spec.relative { row.max_rel_err } else { row.max_abs_err };
        assert!(err <= spec.bound, "{}: error {err:e} above {:e}", spec.function, spec.bound);
        assert_eq!(row.rounds, spec.rounds, "{}: rounds", spec.function);
    }
}

#[test]
fn local_truncation_keeps_the_bounds_on_these_inputs() {
    for spec in &SPECS {
        let row = accuracy::measure(spec, Truncation::Local, Some(8)).expect("run");
        let err = if spec.relative { row.max_rel_err } else { row.max_abs_err };
        assert!(err <= spec.bound, "{}: error {err:e} above {:e}", spec.function, spec.bound);
        assert!(row.rounds <= spec.rounds, "{}: local truncation never adds rounds", spec.function);
    }
}

#[test]
fn the_simulation_runs_the_same_algorithm() {
    for spec in &SPECS {
        let secure = accuracy::run_secure(spec, Truncation::Dealer, Some(9)).expect("run").outputs;
        for (input, got) in spec.inputs().iter().zip(&secure) {
            let mut fixed = Fixed::default();
            let x = fixed.input(mpc_core::transport::Role::P1, Some(input), input.len()).unwrap();
            let y = spec.apply(&mut fixed, &x, spec.row_len(input)).unwrap();
            let simulated = fixed.reveal(&y).unwrap();
            for (s, g) in simulated.iter().zip(got) {
                // Truncations differ by at most a unit per step; relative where the value is large.
                let tolerance = 1e-3f64.max(1e-3 * s.abs());
                assert!((s - g).abs() <= tolerance, "{}: simulated {s} vs secure {g}", spec.function);
            }
        }
    }
}
