#!/usr/bin/env python3
"""Throughput reference (Hugging Face transformers, CPU) for `lambda-dpo logprobs`.

    # write a seeded random-init tiny Llama HF folder + DIR/input.jsonl
    /work/pyenv/bin/python benchmarks/logprobs_transformers.py --make DIR
    # score it; prints one JSON line
    /work/pyenv/bin/python benchmarks/logprobs_transformers.py --run DIR [--batch-size 8] [--threads 2] [--repeats 3]

Model: LlamaForCausalLM, hidden 256, 4 layers, 8 heads, 2 kv heads, intermediate 688, vocab 2000,
untied embeddings, float32, no tokenizer. input.jsonl: 64 lines {"input_ids": [128 ids],
"completion_start": 64}.

--run loads the folder with transformers defaults (float32, default attention implementation),
and under torch.inference_mode computes log p(ids[t] | ids[:t]) for t in completion_start..len-1,
batched (right padding + attention mask when lengths differ), with the standard forward (full
logits) and a float32 log-softmax. It times the whole pass `repeats` times and reports the best:
{"tokens_scored", "tokens_processed" (all input tokens through the forward), "seconds",
"tokens_per_s" = tokens_processed / seconds, "torch", "transformers", "threads", ...}.
"""

import argparse
import json
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

SEED = 20240726
N_SEQ, SEQ_LEN, COMPLETION_START, VOCAB = 64, 128, 64, 2000


def make(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        architectures=["LlamaForCausalLM"],
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    gen = torch.Generator().manual_seed(SEED + 1)
    with open(out / "input.jsonl", "w") as f:
        for _ in range(N_SEQ):
            ids = torch.randint(0, VOCAB, (SEQ_LEN,), generator=gen).tolist()
            f.write(json.dumps({"input_ids": ids, "completion_start": COMPLETION_START}) + "\n")
    print(f"wrote {out}")


def score_batch(model, batch):
    lens = [len(r["input_ids"]) for r in batch]
    t_max = max(lens)
    ids = torch.zeros((len(batch), t_max), dtype=torch.long)
    mask = torch.zeros((len(batch), t_max), dtype=torch.long)
    for i, r in enumerate(batch):
        ids[i, : lens[i]] = torch.tensor(r["input_ids"])
        mask[i, : lens[i]] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok_lp = logp.gather(-1, ids[:, 1:, None])[..., 0]
    return [tok_lp[i, r["completion_start"] - 1 : lens[i] - 1] for i, r in enumerate(batch)]


def run(d: Path, batch_size: int, threads: int, repeats: int):
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    rows = [json.loads(l) for l in open(d / "input.jsonl") if l.strip()]
    tokens_processed = sum(len(r["input_ids"]) for r in rows)
    tokens_scored = sum(len(r["input_ids"]) - r["completion_start"] for r in rows)
    best = float("inf")
    checksum = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = []
            for s in range(0, len(rows), batch_size):
                out.extend(score_batch(model, rows[s : s + batch_size]))
        best = min(best, time.perf_counter() - t0)
        checksum = float(sum(o.double().sum() for o in out))
    assert sum(len(o) for o in out) == tokens_scored
    print(
        json.dumps(
            {
                "tokens_scored": tokens_scored,
                "tokens_processed": tokens_processed,
                "seconds": best,
                "tokens_per_s": tokens_processed / best,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "threads": threads,
                "batch_size": batch_size,
                "repeats": repeats,
                "attn_implementation": model.config._attn_implementation,
                "sum_logprobs": checksum,
            }
        )
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--make", type=Path, metavar="DIR")
    g.add_argument("--run", type=Path, metavar="DIR")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.make:
        make(a.make)
    else:
        run(a.run, a.batch_size, a.threads, a.repeats)


if __name__ == "__main__":
    main()
