#!/usr/bin/env bash
# `lambda-dpo bench` against benchmarks/torch_reference.py (transformers + PEFT, TRL's way) on the
# standard workloads, printed as a markdown table.
#
#   train-step: presets tiny and qwen40m × reference disabled-adapter and cache,
#               N = 4 responses, P = 128 prompt tokens, C = 128 response tokens, LoRA r 8, f32
#   logprobs, generate: both presets, the same N, P, C (generate: C new tokens per prompt)
#
# Steps (defaults, for a 2-core machine; the whole script takes ~10 minutes there):
# tiny 5 measured + 1 warm-up, qwen40m 3 measured + 1 warm-up. The two tools alternate run by
# run, so a drift in machine load hits both. MFU in the tables uses ONE peak for every row: the
# best f32 1024³ matmul throughput that any run (either tool) measured.
#
# Usage: PYTHON=/path/to/venv/bin/python benchmarks/compare.sh [OUT_DIR]
#        (env: THREADS=2 STEPS_TINY=5 STEPS_QWEN=3 WARMUP=1 SKIP_INFERENCE=1)
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

run_pair() { # NAME BENCH ARGS...
  local name=$1 bench=$2
  shift 2
  echo "== $bench $name" >&2
  "$BIN" bench "$bench" "$@" --threads "$THREADS" --json >"$OUT/lambda-dpo-$name.json"
  "$PYTHON" benchmarks/torch_reference.py "$bench" "$@" --threads "$THREADS" --json \
    >"$OUT/torch-$name.json" 2>>"$OUT/torch.log"
}

for preset in tiny qwen40m; do
  steps=${STEPS_TINY:-5}
  [ "$preset" = qwen40m ] && steps=${STEPS_QWEN:-3}
  common=(--preset "$preset" --n 4 --prompt-len 128 --response-len 128 --steps "$steps" --warmup "$WARMUP")
  for ref in disabled-adapter cache; do
    run_pair "train-$preset-$ref" train-step "${common[@]}" --reference "$ref"
  done
  if [ -z "${SKIP_INFERENCE:-}" ]; then
    run_pair "logprobs-$preset" logprobs "${common[@]}"
    run_pair "generate-$preset" generate "${common[@]}"
  fi
done

python3 - "$OUT" <<'PY'
import glob, json, os, sys

out = sys.argv[1]
runs = {}
for path in glob.glob(os.path.join(out, "*.json")):
    tool, name = os.path.basename(path)[:-5].split("-", 1) if not os.path.basename(path).startswith("lambda-dpo-") \
        else ("lambda-dpo", os.path.basename(path)[len("lambda-dpo-"):-5])
    runs[(tool, name)] = json.load(open(path))
peak = max(r["matmul_peak_gflops"] for r in runs.values())
by_tool = {t: [r["matmul_peak_gflops"] for (tt, _), r in runs.items() if tt == t] for t in ("lambda-dpo", "torch")}
any_run = next(iter(runs.values()))

def fmt(x, d=0):
    return "–" if x is None else f"{x:,.{d}f}"

def names(prefix):
    return sorted({n for (_, n) in runs if n.startswith(prefix)}, key=lambda n: ("qwen40m" in n, n))

print(f"{any_run['threads']} threads, f32. MFU = model FLOPs/s ÷ {peak:.1f} GFLOP/s, the best f32 1024³ matmul of all runs "
      f"(lambda-dpo/candle runs measured {min(by_tool['lambda-dpo']):.0f}–{max(by_tool['lambda-dpo']):.0f}, "
      f"torch runs {min(by_tool['torch']):.0f}–{max(by_tool['torch']):.0f} GFLOP/s).\n")
print("**train-step** (tokens/s = N·(P+C) tokens through the policy forward per median step; MFU by 6·N_params·tokens)\n")
print("| tool | workload | reference | tokens/s | fwd ms | bwd+opt ms | peak RSS MiB (process / steps) | MFU | tokens/s vs torch | peak RSS vs torch |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in names("train-"):
    t = runs.get(("torch", name))
    for tool in ("lambda-dpo", "torch"):
        r = runs.get((tool, name))
        if r is None:
            continue
        mfu = r["model_flops_per_step"] / (r["step_ms"]["median"] / 1e3) / (peak * 1e9)
        ratio = rss = "1.00" if tool == "torch" else "–"
        if tool != "torch" and t:
            ratio = f"{r['tokens_per_s'] / t['tokens_per_s']:.2f}×"
            rss = f"{r['peak_rss_mib'] / t['peak_rss_mib']:.2f}×"
        wl = f"{r['model']} N={r['n']} P={r['prompt_len']} C={r['response_len']}"
        print(f"| {tool} | {wl} | {r['reference']} | {fmt(r['tokens_per_s'])} | {fmt(r['forward_ms']['median'])} | "
              f"{fmt(r['backward_ms']['median'])} | {fmt(r['peak_rss_mib'])} / {fmt(r['steps_peak_rss_mib'])} | "
              f"{100 * mfu:.1f} % | {ratio} | {rss} |")
inf = names("logprobs-") + names("generate-")
if inf:
    print("\n**inference** (logprobs: N·(P+C) tokens scored per forward; generate: N·C new tokens, greedy, KV cache)\n")
    print("| tool | bench | workload | tokens/s | step ms | prefill ms | decode tokens/s | peak RSS MiB (process / steps) | MFU | tokens/s vs torch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in inf:
        t = runs.get(("torch", name))
        for tool in ("lambda-dpo", "torch"):
            r = runs.get((tool, name))
            if r is None:
                continue
            mfu = r["model_flops_per_step"] / (r["step_ms"]["median"] / 1e3) / (peak * 1e9)
            ratio = "1.00" if tool == "torch" else (f"{r['tokens_per_s'] / t['tokens_per_s']:.2f}×" if t else "–")
            pre = r["prefill_ms"]["median"] if r.get("prefill_ms") else None
            wl = f"{r['model']} N={r['n']} P={r['prompt_len']} C={r['response_len']}"
            print(f"| {tool} | {r['bench']} | {wl} | {fmt(r['tokens_per_s'])} | {fmt(r['step_ms']['median'])} | {fmt(pre)} | "
                  f"{fmt(r.get('decode_tokens_per_s'))} | {fmt(r['peak_rss_mib'])} / {fmt(r['steps_peak_rss_mib'])} | "
                  f"{100 * mfu:.1f} % | {ratio} |")
print(f"\n(JSON of every run in {out})")
PY
