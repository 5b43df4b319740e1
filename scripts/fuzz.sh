#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds each (default 30) on stable Rust, without sanitizers,
# installing cargo-fuzz first if needed. Prints each target's execution count; exits non-zero if
# any target finds a crash (its input lands in fuzz/artifacts/<target>/).
set -euo pipefail
seconds="${1:-30}"
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# The target list must come out whole: a failing `cargo fuzz list` would otherwise run nothing
# and exit 0.
targets="$(cargo fuzz list)"
count=$(echo "$targets" | grep -c . || true)
if [ "$count" -lt 1 ]; then
  echo "error: cargo fuzz list printed no target" >&2
  exit 1
fi
expected=$(ls fuzz_targets/*.rs | wc -l)
if [ "$count" -ne "$expected" ]; then
  echo "error: cargo fuzz list printed $count targets, fuzz_targets/ holds $expected" >&2
  exit 1
fi
status=0
for target in $targets; do
  log="$(mktemp)"
  if cargo fuzz run -s none "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    runs="$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 || true)"
    echo "$target: ${runs:-ran} in ${seconds}s, no crash"
  else
    echo "$target: CRASH (see fuzz/artifacts/$target)"; tail -20 "$log"; status=1
  fi
  rm -f "$log"
done
exit $status
