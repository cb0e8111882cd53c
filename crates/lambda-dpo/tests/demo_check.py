"""Checks a finished demo's products against transformers + PEFT (run by hand, not by CI).

    lambda-dpo demo --out /tmp/demo
    /work/pyenv/bin/python crates/lambda-dpo/tests/demo_check.py /tmp/demo [path/to/lambda-dpo]

For the trained SFT model (a full fine-tune written as a Hugging Face folder) and for it with the
prompt-conditioned λ-DPO adapter (a PEFT LoRA folder), the sequence log-probs of the first 16
conversations of the demo's SFT data (system message with the λ line where the row has one)
are computed by `lambda-dpo logprobs` and by transformers (+ PEFT `PeftModel.from_pretrained`),
and compared. Prints the largest absolute difference; exits non-zero above 1e-3.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

ROWS = 16
TOL = 1e-3


def ours(binary: str, model: Path, adapter: Path | None, rows: list[dict]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in.jsonl"
        inp.write_text("".join(
            json.dumps({"messages": r["messages"][:-1], "completion": r["messages"][-1]["content"]}) + "\n"
            for r in rows))
        cmd = [binary, "logprobs", "--model", str(model), "--input", str(inp)]
        if adapter is not None:
            cmd += ["--adapter", str(adapter)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["sum"] for line in out.splitlines()]


def theirs(model, tok, rows: list[dict]) -> list[float]:
    sums = []
    for r in rows:
        prompt = tok.apply_chat_template(r["messages"][:-1], tokenize=False, add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(r["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        target = ids[0, len(p_ids):]
        sums.append(logp[len(p_ids) - 1: -1].gather(1, target[:, None]).sum().item())
    return sums


def main(root: Path, binary: str) -> int:
    rows = [json.loads(l) for l in (root / "data" / "sft.jsonl").read_text().splitlines()[:ROWS]]
    sft = root / "runs" / "sft" / "model"
    adapter = root / "runs" / "lambda-dpo-prompt" / "adapter"
    tok = AutoTokenizer.from_pretrained(sft)
    base = AutoModelForCausalLM.from_pretrained(sft, dtype=torch.float32).eval()
    failures = 0
    for name, a in [("SFT model", None), ("SFT model + λ-DPO prompt adapter", adapter)]:
        model = PeftModel.from_pretrained(base, a).eval() if a is not None else base
        o, t = ours(binary, sft, a, rows), theirs(model, tok, rows)
        worst = max(abs(x - y) for x, y in zip(o, t))
        print(f"{name}: {len(rows)} conversations, Σ log-probs ours {sum(o):.4f} "
              f"transformers {sum(t):.4f}, max |diff| per sequence {worst:.2e}")
        failures += worst > TOL
    print("OK" if failures == 0 else f"FAILED ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "lambda-dpo-demo")
    binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/lambda-dpo"
    sys.exit(main(root, binary))
