#!/usr/bin/env bash
# `lambda-dpo eval` vs lm-eval-harness on the same items: arc_easy (first N rows of the MosaicML
# ARC-Easy file in ../shared/data), 0-shot, the tiny Llama fixture, f32, CPU, whole process each.
# lm-eval reads the same file through the local task YAMLs committed with the eval fixtures.
# lambda-dpo runs twice: with prefix sharing (one forward per item, the context once) and with
# --no-prefix-sharing (one right-padded row per choice, as lm-eval's HF backend).
# Usage: PYTHON=/path/to/venv/bin/python benchmarks/eval_arc.sh [N]   (venv: pip install lm-eval==0.4.13)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
ROOT=$(pwd)
MODEL=$ROOT/crates/lambda-dpo-model/tests/fixtures/llama/model
DATA=$ROOT/../shared/data/benchmarks
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cargo build --release -q -p lambda-dpo-cli
for flags in "" "--no-prefix-sharing"; do
    echo "lambda-dpo ${flags:-(prefix sharing, the default)}:"
    /usr/bin/time -f "  %e s wall, %M KB peak" ./target/release/lambda-dpo eval --model "$MODEL" \
        --tasks arc_easy --limit "$N" --data-dir "$DATA" $flags --output "$OUT/lambda-dpo.json"
done
echo "lm-eval:"
(cd "$DATA" && HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 /usr/bin/time -f "  %e s wall, %M KB peak" \
    "${PYTHON:-python3}" -m lm_eval --model hf --model_args "pretrained=$MODEL,dtype=float32" \
    --tasks arc_easy --include_path "$ROOT/crates/lambda-dpo/tests/fixtures/eval/tasks" \
    --limit "$N" --batch_size 1 --device cpu 2>&1 | grep -E "arc_easy|acc|wall")
