#!/usr/bin/env bash
# `lambda-dpo bench` against benchmarks/torch_reference.py (transformers + PEFT, TRL's way) on the
# standard workloads, printed as a markdown table.
#
#   train-step: presets tiny and qwen40m × reference disabled-adapter and cache,
#               N = 4 responses, P = 128 prompt tokens, C = 128 response tokens, LoRA r 8, f32;
#               lambda-dpo also with --prefix-sharing (a row of its own; TRL has no equivalent)
#   logprobs, generate: both presets, the same N, P, C (generate: C new tokens per prompt)
#
# Steps (defaults, for a 2-core machine): tiny 5 measured + 1 warm-up, qwen40m 3 measured + 1
# warm-up, and the whole set REPEAT=3 times (about 12 minutes there, 8 with SKIP_INFERENCE=1;
# REPEAT=1 SKIP_INFERENCE=1 takes about 3). The two tools alternate run by run, so a drift in
# machine load hits both; every figure in the tables is the median over the repeats, and the
# "vs torch" ratios are medians of the per-repeat ratios. MFU uses ONE peak for every row: the best f32 1024³ matmul throughput
# that any run (either tool) measured.
#
# Usage: PYTHON=/path/to/venv/bin/python benchmarks/compare.sh [OUT_DIR]
#        (env: THREADS=2 STEPS_TINY=5 STEPS_QWEN=3 WARMUP=1 REPEAT=3 SKIP_INFERENCE=1)
# The venv needs torch, transformers, peft (pip install torch transformers peft).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-1}
BIN=${CARGO_TARGET_DIR:-target}/release/lambda-dpo
cargo build --release -q -p lambda-dpo-cli
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
# train-step rows with --prefix-sharing too, when this build has it (one packed forward per list).
PREFIX=$("$BIN" bench train-step --help | grep -q -- --prefix-sharing && echo 1 || true)

run_pair() { # NAME BENCH ARGS...
  local name=$1 bench=$2
  shift 2
  echo "== repeat $rep: $bench $name" >&2
  "$BIN" bench "$bench" "$@" --threads "$THREADS" --json >"$OUT/lambda-dpo_$name.r$rep.json"
  "$PYTHON" benchmarks/torch_reference.py "$bench" "$@" --threads "$THREADS" --json \
    >"$OUT/torch_$name.r$rep.json" 2>>"$OUT/torch.log"
}

for rep in $(seq 1 "${REPEAT:-3}"); do
for preset in tiny qwen40m; do
  steps=${STEPS_TINY:-5}
  [ "$preset" = qwen40m ] && steps=${STEPS_QWEN:-3}
  common=(--preset "$preset" --n 4 --prompt-len 128 --response-len 128 --steps "$steps" --warmup "$WARMUP")
  for ref in disabled-adapter cache; do
    run_pair "train-$preset-$ref" train-step "${common[@]}" --reference "$ref"
    if [ -n "$PREFIX" ]; then # lambda-dpo only: TRL has no prefix sharing
      echo "== repeat $rep: train-step train-$preset-$ref --prefix-sharing" >&2
      "$BIN" bench train-step "${common[@]}" --reference "$ref" --prefix-sharing --threads "$THREADS" \
        --json >"$OUT/lambda-dpo+prefix_train-$preset-$ref.r$rep.json"
    fi
  done
  if [ -z "${SKIP_INFERENCE:-}" ]; then
    run_pair "logprobs-$preset" logprobs "${common[@]}"
    run_pair "generate-$preset" generate "${common[@]}"
  fi
done
done

python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
from collections import defaultdict

out = sys.argv[1]
runs = defaultdict(dict)  # (tool, name) -> {repeat: report}
for path in glob.glob(os.path.join(out, "*.r*.json")):
    stem, rep = os.path.basename(path)[:-5].rsplit(".r", 1)
    tool, name = stem.split("_", 1)
    runs[(tool, name)][int(rep)] = json.load(open(path))
peak = max(r["matmul_peak_gflops"] for reps in runs.values() for r in reps.values())
by_tool = {t: [r["matmul_peak_gflops"] for (tt, _), reps in runs.items() if tt.startswith(t) for r in reps.values()]
           for t in ("lambda-dpo", "torch")}
n_rep = max(len(reps) for reps in runs.values())
first = next(iter(next(iter(runs.values())).values()))

def med(tool, name, get):
    vals = [get(r) for r in runs[(tool, name)].values()]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def ratio(name, get, tool="lambda-dpo"):
    a, b = runs.get((tool, name), {}), runs.get(("torch", name), {})
    rs = [get(a[k]) / get(b[k]) for k in a if k in b]
    if not rs:
        return "–"
    spread = f" ({min(rs):.2f}–{max(rs):.2f})" if len(rs) > 1 else ""
    return f"{statistics.median(rs):.2f}×{spread}"

def fmt(x, d=0):
    return "–" if x is None else f"{x:,.{d}f}"

def names(prefix):
    return sorted({n for (_, n) in runs if n.startswith(prefix)}, key=lambda n: ("qwen40m" in n, n))

def mfu(r):
    return r["model_flops_per_step"] / (r["step_ms"]["median"] / 1e3) / (peak * 1e9)

tps = lambda r: r["tokens_per_s"]
rss = lambda r: r["peak_rss_mib"]
added = lambda r: None if r.get("steps_peak_rss_mib") is None else r["steps_peak_rss_mib"] - r["rss_before_steps_mib"]
print(f"{first['threads']} threads, f32, medians over {n_rep} repeat(s). MFU = model FLOPs/s ÷ {peak:.1f} GFLOP/s, the best "
      f"f32 1024³ matmul of all runs (candle in the lambda-dpo runs: {min(by_tool['lambda-dpo']):.0f}–{max(by_tool['lambda-dpo']):.0f}, "
      f"torch: {min(by_tool['torch']):.0f}–{max(by_tool['torch']):.0f} GFLOP/s).\n")
print("**train-step** (tokens/s = N·(P+C) tokens through the policy forward per median step; MFU by 6·N_params·tokens; "
      "peak RSS = whole process, \"steps add\" = steps' peak − RSS at their start)\n")
print("| tool | workload | reference | tokens/s | fwd ms | bwd+opt ms | peak RSS MiB | steps add MiB | MFU | tokens/s vs torch | peak RSS vs torch |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in names("train-"):
    for tool in ("lambda-dpo", "lambda-dpo+prefix", "torch"):
        if (tool, name) not in runs:
            continue
        r0 = next(iter(runs[(tool, name)].values()))
        m = lambda get: med(tool, name, get)
        vs = ("1.00", "1.00") if tool == "torch" else (ratio(name, tps, tool), ratio(name, rss, tool))
        label = "lambda-dpo, prefix sharing" if tool == "lambda-dpo+prefix" else tool
        print(f"| {label} | {r0['model']} N={r0['n']} P={r0['prompt_len']} C={r0['response_len']} | {r0['reference']} | "
              f"{fmt(m(tps))} | {fmt(m(lambda r: r['forward_ms']['median']))} | {fmt(m(lambda r: r['backward_ms']['median']))} | "
              f"{fmt(m(rss))} | {fmt(m(added))} | {100 * m(mfu):.1f} % | {vs[0]} | {vs[1]} |")
inf = names("logprobs-") + names("generate-")
if inf:
    print("\n**inference** (logprobs: N·(P+C) tokens scored per forward; generate: N·C new tokens, greedy, KV cache)\n")
    print("| tool | bench | workload | tokens/s | step ms | prefill ms | decode tokens/s | peak RSS MiB | steps add MiB | MFU | tokens/s vs torch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in inf:
        for tool in ("lambda-dpo", "torch"):
            if (tool, name) not in runs:
                continue
            r0 = next(iter(runs[(tool, name)].values()))
            m = lambda get: med(tool, name, get)
            vs = "1.00" if tool == "torch" else ratio(name, tps)
            pre = m(lambda r: r["prefill_ms"]["median"] if r.get("prefill_ms") else None)
            print(f"| {tool} | {r0['bench']} | {r0['model']} N={r0['n']} P={r0['prompt_len']} C={r0['response_len']} | "
                  f"{fmt(m(tps))} | {fmt(m(lambda r: r['step_ms']['median']))} | {fmt(pre)} | "
                  f"{fmt(m(lambda r: r.get('decode_tokens_per_s')))} | {fmt(m(rss))} | {fmt(m(added))} | "
                  f"{100 * m(mfu):.1f} % | {vs} |")
print(f"\n(JSON of every run in {out})")
PY
