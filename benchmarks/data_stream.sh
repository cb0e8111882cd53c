#!/usr/bin/env bash
# Streaming benchmark for the data readers: `lambda-dpo data inspect` over N synthetic
# UltraFeedback-raw records (4 completions, 4 aspects, string ratings, some "N/A"), written
# as JSON Lines, as ONE top-level JSON array, and as gzipped JSON Lines. Reports records/s and
# peak RSS (GNU time). Memory must stay flat as N grows: nothing holds more than one record.
#
#   benchmarks/data_stream.sh                 # N=100000, release binary
#   N=20000 BIN=target/debug/lambda-dpo benchmarks/data_stream.sh
#   MODEL=path/to/hf/model benchmarks/data_stream.sh   # also tokenize with the chat template
#
# Needs python3 (generation only) and /usr/bin/time. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/lambda-dpo}"
WORK="${WORK:-$(mktemp -d)}"
[ -x "$BIN" ] || cargo build --release -p lambda-dpo-cli
echo "binary: $BIN"
echo "records: $N  (files in $WORK)"

python3 - "$N" "$WORK" <<'PY'
import json, random, sys, gzip
n, work = int(sys.argv[1]), sys.argv[2]
rng = random.Random(0)
words = ("the of and to in is you that it he was for on are as with his they at be this "
         "have from or one had by word but not what all were we when your can said there use "
         "an each which she do how their if will up other about out many then them these so "
         "some her would make like him into time has look two more write go see number no way "
         "could people my than first water been call who oil its now find long down day did get "
         "come made may part").split()
def text(k):
    return " ".join(rng.choice(words) for _ in range(k))
models = ["alpaca-7b", "pythia-12b", "starchat", "vicuna-33b", "gpt-4", "llama-2-70b-chat"]
aspects = ["helpfulness", "honesty", "instruction_following", "truthfulness"]
def record(i):
    ms = rng.sample(models, 4)
    comps = []
    for m in rng.sample(ms, 4):  # completions' order differs from models[]
        ann = {a: {"Rating": rng.choice(["1", "2", "3", "4", "5", "N/A"] if a == "honesty" else ["1", "2", "3", "4", "5"]),
                   "Rationale": text(12)} for a in aspects}
        comps.append({"annotations": ann, "custom_system_prompt": text(8), "model": m,
                      "principle": "helpfulness", "response": text(rng.randint(40, 90))})
    return {"source": rng.choice(["evol_instruct", "sharegpt", "ultrachat", "truthful_qa"]),
            "instruction": text(rng.randint(15, 40)), "models": ms, "completions": comps}
with open(f"{work}/uf.jsonl", "w") as jl, open(f"{work}/uf.json", "w") as arr, \
        gzip.open(f"{work}/uf.jsonl.gz", "wt", compresslevel=6) as gz:
    arr.write("[\n")
    for i in range(n):
        line = json.dumps(record(i))
        jl.write(line + "\n"); gz.write(line + "\n")
        arr.write(("," if i else "") + line + "\n")
    arr.write("]\n")
PY

run() {
  local file="$1"; shift
  local log="$WORK/time.log"
  /usr/bin/time -v "$BIN" data inspect "$file" "$@" --json >"$WORK/out.json" 2>"$log"
  local wall rss size
  wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$log" | awk '{print $NF}')
  size=$(du -m "$file" | cut -f1)
  python3 - "$file" "$wall" "$rss" "$size" "$N" <<'PY'
import sys
f, wall, rss, size, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(f"{f.split('/')[-1]:<14} {size:>6} MB  {secs:7.2f} s  {n / secs:10.0f} records/s  peak RSS {rss / 1024:7.1f} MiB")
PY
}
echo "file             size     wall       throughput           memory"
run "$WORK/uf.jsonl"
run "$WORK/uf.json"
run "$WORK/uf.jsonl.gz"
if [ -n "${MODEL:-}" ]; then
  echo "with --model $MODEL (chat template + tokenizer):"
  run "$WORK/uf.jsonl" --model "$MODEL"
fi
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('check:', d['items'], 'lists,', d['records'], 'records')" "$WORK/out.json"
