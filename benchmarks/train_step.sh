#!/usr/bin/env bash
# λ-DPO training throughput and peak memory on a stated tiny config: N = 4 responses of 64
# tokens after a 64-token prompt, LoRA r 8 on all seven projections, f32, batch 1 × grad-accum 1.
# Model: the random tiny Llama of benchmarks/logprobs_transformers.py --make (hidden 256,
# 4 layers, 8/2 heads, vocab 2000). Usage: benchmarks/train_step.sh MODEL_DIR [REF_MODE] [CHUNK]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?model folder (benchmarks/logprobs_transformers.py --make DIR)}
REF=${2:-disabled-adapter}
CHUNK=${3:-4}
WORK=$(mktemp -d)
python3 - "$WORK/train.jsonl" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(32):
        prompt = [random.randrange(3, 2000) for _ in range(64)]
        responses = [{"ids": [random.randrange(3, 2000) for _ in range(64)],
                      "scores": {"helpfulness": random.randint(1, 5), "honesty": random.randint(1, 5)}}
                     for _ in range(4)]
        f.write(json.dumps({"prompt_ids": prompt, "responses": responses}) + "\n")
PY
# The bench model has no tokenizer; the data is pre-tokenized, so any tokenizer will do for
# loading: borrow the fixture's.
mkdir -p "$WORK/model"
for f in config.json model.safetensors; do ln -s "$(realpath "$MODEL/$f")" "$WORK/model/$f"; done
for f in tokenizer.json tokenizer_config.json; do cp crates/lambda-dpo-model/tests/fixtures/llama/model/$f "$WORK/model/"; done
cat > "$WORK/run.toml" <<TOML
[model]
path = "model"
[data]
train = "train.jsonl"
[train]
output_dir = "run"
max_steps = 16
grad_accum = 1
chunk_size = $CHUNK
warmup_ratio = 0.0
[reference]
mode = "$REF"
TOML
cargo build --release -q -p lambda-dpo-cli
/usr/bin/time -v ./target/release/lambda-dpo train --config "$WORK/run.toml" 2>"$WORK/time.txt" >/dev/null || { cat "$WORK/time.txt"; exit 1; }
python3 - "$WORK" <<'PY'
import json, sys, re
w = sys.argv[1]
rows = [json.loads(l) for l in open(f"{w}/run/metrics.jsonl") if '"loss"' in l and '"eval/' not in l]
t = open(f"{w}/time.txt").read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
print(json.dumps({"steps": len(rows), "tokens_per_second_last": round(rows[-1]["tokens_per_second"]),
                  "peak_rss_mb": round(rss, 1), "loss_first": rows[0]["loss"], "loss_last": rows[-1]["loss"]}))
PY
