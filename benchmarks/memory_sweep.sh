#!/usr/bin/env bash
# Peak memory of a λ-DPO training step against N (responses per list) and response length C,
# separate forwards vs prefix sharing, and the two-pass chunked path for large N.
# Usage: benchmarks/memory_sweep.sh [PRESET=tiny] [STEPS=2]
# Prints a markdown table: steps-only peak RSS (VmHWM reset when the steps start) and tokens/s.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-tiny}
STEPS=${2:-2}
BIN=target/release/lambda-dpo
[ -x "$BIN" ] || cargo build --release -p lambda-dpo-cli
row() { # label, then bench flags
  local label=$1; shift
  "$BIN" bench train-step --preset "$PRESET" --steps "$STEPS" --warmup 0 --reference cache --json "$@" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("| %s | %d | %d | %d | %s | %.0f | %.0f | %.0f |" % (sys.argv[1], d["n"], d["prompt_len"], d["response_len"], d["chunk_size"], d["n"]*(d["prompt_len"]+d["response_len"]), d["steps_peak_rss_mib"] - d["rss_before_steps_mib"], d["tokens_per_s"]))' "$label"
}
echo "| path | N | P | C | chunk | N·(P+C) tokens | step memory MiB (peak − before) | tokens/s |"
echo "|---|---|---|---|---|---|---|---|"
for n in 2 4 8 16; do
  row separate --n "$n" --prompt-len 128 --response-len 128
  row "prefix sharing" --n "$n" --prompt-len 128 --response-len 128 --prefix-sharing
done
for c in 64 256 512; do
  row separate --n 4 --prompt-len 128 --response-len "$c"
  row "prefix sharing" --n 4 --prompt-len 128 --response-len "$c" --prefix-sharing
done
row "two-pass, chunk 4" --n 16 --prompt-len 128 --response-len 128 --chunk-size 4
row "two-pass, chunk 4 + prefix sharing" --n 16 --prompt-len 128 --response-len 128 --chunk-size 4 --prefix-sharing
