"""Checks the synthetic world's model folder against transformers (run by hand, not by CI).

    WORLD_CHECK_DIR=/tmp/world cargo test --workspace --test world -- --ignored world_check_folder
    /work/pyenv/bin/python crates/lambda-dpo/tests/world_check.py /tmp/world

The Rust test writes /tmp/world/model (the tiny Llama with the world's tokenizer) and
/tmp/world/expected.json (our chat renders, token ids and sequence log-probs). This script
checks that transformers loads the folder (AutoModelForCausalLM, AutoTokenizer), that
`apply_chat_template` gives the same text with and without a system message, that its token
ids match ours, and that its log-probs of the responses match ours.
"""

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(root: Path) -> int:
    model_dir = root / "model"
    expected = json.loads((root / "expected.json").read_text())
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    print(f"tokenizer: {type(tok).__name__}, vocab {len(tok)}, bos {tok.bos_token!r}, eos {tok.eos_token!r}")
    print(f"model: {type(model).__name__}, {sum(p.numel() for p in model.parameters())} parameters, "
          f"tied {model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()}")
    failures = 0

    for i, case in enumerate(expected["cases"]):
        msgs = case["messages"]
        text = tok.apply_chat_template(msgs, tokenize=False)
        prompt_text = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        has_system = msgs[0]["role"] == "system"
        ok_text = text == case["text"] and prompt_text == case["prompt_text"]
        ok_ids = ids == case["ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        start = case["start"]
        target = torch.tensor(ids[start:])
        ours = case["logp"]
        theirs = logp[start - 1 : len(ids) - 1].gather(1, target[:, None]).sum().item()
        ok_logp = abs(theirs - ours) < 1e-3 * max(1.0, abs(ours))
        print(f"case {i} (system: {has_system}): text {'==' if ok_text else '!='}, "
              f"ids {'==' if ok_ids else '!='} ({len(ids)} tokens), "
              f"logp ours {ours:.5f} transformers {theirs:.5f}")
        failures += (not ok_text) + (not ok_ids) + (not ok_logp)
        if not ok_text:
            print("  ours:", repr(case["text"]), "\n  theirs:", repr(text))

    bad = 0
    for text, ids in zip(expected["corpus"], expected["corpus_ids"]):
        theirs = tok(text, add_special_tokens=False)["input_ids"]
        back = tok.decode(theirs, skip_special_tokens=False)
        if theirs != ids or back != text:
            bad += 1
            if bad <= 3:
                print("  corpus mismatch:", repr(text), ids, theirs, repr(back))
    print(f"corpus: {len(expected['corpus']) - bad}/{len(expected['corpus'])} texts encode to our ids and decode back")
    with_bos = tok("Olm.")["input_ids"]
    print(f"tokenizer('Olm.') starts with BOS: {with_bos[0] == tok.bos_token_id}")
    failures += bad + (with_bos[0] != tok.bos_token_id)

    # Generation stops at the end-of-turn token from generation_config.json.
    gen = model.generation_config
    print(f"generation_config eos_token_id: {gen.eos_token_id}")
    print("OK" if failures == 0 else f"FAILED ({failures})")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/world")))
