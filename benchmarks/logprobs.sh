#!/usr/bin/env bash
# Side-by-side throughput of `lambda-dpo logprobs` and transformers on the same tiny Llama.
# Needs a Python with torch + transformers (pip install torch transformers) as $PYTHON.
# Usage: benchmarks/logprobs.sh [DIR] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/lambda-dpo-bench-logprobs}
THREADS=${2:-1}
PYTHON=${PYTHON:-python3}
[ -f "$DIR/model.safetensors" ] || "$PYTHON" benchmarks/logprobs_transformers.py --make "$DIR"
cargo build --release -q -p lambda-dpo-cli
echo "== transformers ($THREADS threads, forward only, best of 3)"
"$PYTHON" benchmarks/logprobs_transformers.py --run "$DIR" --threads "$THREADS" --repeats 3
echo "== lambda-dpo ($THREADS threads, whole process incl. model load)"
for _ in 1 2 3; do
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=$THREADS ./target/release/lambda-dpo logprobs --model "$DIR" --input "$DIR/input.jsonl" --batch-size 8 >/tmp/lambda-dpo-bench-out.jsonl 2>/dev/null
  end=$(date +%s.%N)
  python3 -c "import json,sys; s=float(sys.argv[2])-float(sys.argv[1]); t=sum(len(json.loads(l)['token_logprobs'])+64 for l in open('/tmp/lambda-dpo-bench-out.jsonl')); print(json.dumps({'tokens_processed': t, 'seconds': round(s,3), 'tokens_per_s': round(t/s), 'sum_logprobs': sum(json.loads(l)['sum'] for l in open('/tmp/lambda-dpo-bench-out.jsonl'))}))" "$start" "$end"
done
