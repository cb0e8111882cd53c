#!/usr/bin/env python3
"""PyTorch reference for `lambda-dpo bench`: the same workloads, computed the way TRL and
transformers do them, with the same report fields.

    /work/pyenv/bin/python benchmarks/torch_reference.py train-step --preset qwen40m \
        --n 4 --prompt-len 128 --response-len 128 --steps 3 --warmup 1 \
        --reference disabled-adapter --threads 2 [--json]
    ... logprobs | generate  (same workload flags)

Needs torch, transformers and peft (tested: torch 2.15, transformers 5.25, peft 0.21).

Models (`--preset`, random init by transformers under torch.manual_seed(--seed)):
  tiny     LlamaForCausalLM  hidden 256, 4 layers, 8 heads / 2 kv, intermediate 688, vocab 2000, untied
  qwen40m  Qwen2ForCausalLM  hidden 512, 8 layers, 8 heads / 2 kv, intermediate 1408, vocab 32000,
           tied embeddings, q/k/v biases, rope θ 1e6
  qwen05b  Qwen2ForCausalLM  Qwen2-0.5B's shape: hidden 896, 24 layers, 14 heads / 2 kv,
           intermediate 4864, vocab 151936, tied, q/k/v biases (494M params)
or `--model DIR` (any local causal-LM folder transformers can load). Token ids: SplitMix64 seeded
with --seed, ids in 3..V, the prompt first then each response (the same ids as lambda-dpo).

train-step, as TRL's DPOTrainer computes a list (TRL 1.x concatenated forward):
  - each response concatenated with its full prompt: input_ids [N, P+C], attention mask of ones;
  - full logits [N, T, V] from the forward, log_softmax in float32, gather the next token,
    sum over the C response positions -> l_theta [N];
  - reference: `with torch.no_grad(), model.disable_adapter()` the same forward
    (disabled-adapter), a tensor computed once before the steps (cache), or zeros (none);
  - lambda-DPO loss  L = -sum_i p_i log softmax_i(beta (l_theta - l_ref)), beta = 0.1, fixed
    target p_i proportional to N - i;
  - backward, clip_grad_norm_(1.0), torch.optim.AdamW (fused when available, TRL's default;
    lr 5e-6, weight decay 0.01) over the LoRA parameters;
  - LoRA: peft LoraConfig(r, lora_alpha=16, lora_dropout=0.05, all seven projections), train mode.
  forward = policy forward + reference + loss; backward = backward + clipping + AdamW step.
logprobs: inference_mode forward of the N sequences, full logits, log_softmax, gather.
generate: model.generate(greedy, use_cache, min_new_tokens = max_new_tokens = C); prefill is
  timed to the first call of a logits processor (the first token's logits).

Peak RSS: ru_maxrss (whole process, imports and model init included: the larger of the peak
before the steps and the peak after `echo 5 > /proc/self/clear_refs` at their start, which
resets both VmHWM and ru_maxrss) and VmHWM since that reset (the steps alone). MFU: FLOPs per
step (6*N*D model convention, 4*N*D + 2*N*D per reference forward actually needed; N = matmul
params = 7 projections per layer + LM head, D = N*(P+C) tokens) / median step time / this
process's best 1024^3 float32 torch.matmul throughput.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def token_ids(seed, vocab, n, p, c):
    """The prompt (P ids) and N responses (C ids each), as lambda-dpo bench draws them."""
    state = seed & M64
    span = max(vocab, 4) - 3

    def draw(k):
        nonlocal state
        out = []
        for _ in range(k):
            state, z = splitmix64(state)
            out.append(3 + z % span)
        return out

    prompt = draw(p)
    return prompt, [draw(c) for _ in range(n)]


def build_model(args, dtype):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if args.model:
        return AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype), args.model
    torch.manual_seed(args.seed)
    max_pos = max(2048, args.prompt_len + args.response_len)
    if args.preset == "tiny":
        cfg = LlamaConfig(
            vocab_size=2000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=max_pos,
            rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        )
        model = LlamaForCausalLM(cfg)
    else:
        # qwen40m, or qwen05b in Qwen2-0.5B's shape (the same Qwen2 settings otherwise).
        hidden, inter, layers, heads, vocab = {
            "qwen40m": (512, 1408, 8, 8, 32000),
            "qwen05b": (896, 4864, 24, 14, 151936),
        }[args.preset]
        cfg = Qwen2Config(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=max_pos,
            rms_norm_eps=1e-6, rope_parameters={"rope_theta": 1_000_000.0, "rope_type": "default"},
            tie_word_embeddings=True, use_sliding_window=False, bos_token_id=1, eos_token_id=2,
        )
        model = Qwen2ForCausalLM(cfg)
    return model.to(dtype), args.preset


PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def param_counts(model):
    """(total stored params, matmul params N = the 7 projections of every layer + LM head)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    total = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    matmul = sum(
        p.numel() for n, p in base.named_parameters()
        if "lora_" not in n and n.endswith("weight") and any(f".{x}." in n for x in PROJ)
    )
    matmul += base.get_output_embeddings().weight.numel()
    return total, matmul


def status_mib(field):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss(report):
    """Resets VmHWM to the current RSS (echo 5 > /proc/self/clear_refs) and records that RSS."""
    # getrusage's ru_maxrss is reset too: keep the peak so far (imports, model init).
    report["setup_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    report["rss_before_steps_mib"] = status_mib("VmRSS")
    return True


def matmul_peak_flops(n=1024, reps=30):
    a = torch.rand(n, n) * 2 - 1
    b = torch.rand(n, n) * 2 - 1
    best = float("inf")
    for rep in range(reps + 1):
        t = time.perf_counter()
        torch.matmul(a, b)
        s = time.perf_counter() - t
        if rep:
            best = min(best, s)
    return 2 * n**3 / best


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)} if xs else None


def sequence_logps(model, input_ids, prompt_len):
    """TRL's way: full logits [N, T, V], float32 log_softmax, gather, sum over the response."""
    logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits  # [N, T, V]
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # [N, T-1]
    return tok[:, prompt_len - 1 :].sum(-1)  # [N]


def train_step(args, model, ids, report):
    from peft import LoraConfig, get_peft_model

    n, p = args.n, args.prompt_len
    lora = LoraConfig(r=args.lora_r, lora_alpha=16, lora_dropout=0.05, target_modules=PROJ, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    try:
        opt = torch.optim.AdamW(params, lr=5e-6, weight_decay=0.01, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(params, lr=5e-6, weight_decay=0.01)
    beta = 0.1
    total = n * (n + 1) / 2
    target = torch.tensor([(n - i) / total for i in range(n)], dtype=torch.float32)
    cached = None
    if args.reference == "cache":
        with torch.no_grad(), model.disable_adapter():
            cached = sequence_logps(model, ids, p).detach()
    reset_ok = reset_peak_rss(report)
    steps, fwds, bwds, losses = [], [], [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        policy = sequence_logps(model, ids, p)
        if args.reference == "disabled-adapter":
            with torch.no_grad(), model.disable_adapter():
                ref = sequence_logps(model, ids, p)
        elif args.reference == "cache":
            ref = cached
        else:
            ref = torch.zeros_like(policy)
        s = beta * (policy - ref.detach())
        loss = -(target * torch.log_softmax(s, dim=-1)).sum()
        t1 = time.perf_counter()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if i >= args.warmup:
            steps.append((t2 - t0) * 1e3)
            fwds.append((t1 - t0) * 1e3)
            bwds.append((t2 - t1) * 1e3)
            losses.append(loss.item())
        if not args.json:
            print(f"step {i + 1}/{args.warmup + args.steps}: {(t2 - t0) * 1e3:.1f} ms (forward {(t1 - t0) * 1e3:.1f} ms)"
                  + (", warm-up" if i < args.warmup else ""), file=sys.stderr)
    report["steps_peak_rss_mib"] = status_mib("VmHWM") if reset_ok else None
    report.update(
        reference=args.reference, lora_r=args.lora_r,
        lora_params=sum(q.numel() for q in params), chunk_size=n,
        tokens_per_step=n * (p + args.response_len),
        step_ms=stats(steps), forward_ms=stats(fwds), backward_ms=stats(bwds),
        loss_first=losses[0], loss_last=losses[-1],
    )
    nd = report["matmul_params"] * n * (p + args.response_len)
    report["model_flops_per_step"] = 6 * nd
    report["actual_flops_per_step"] = (4 + (2 if args.reference == "disabled-adapter" else 0)) * nd
    report["flop_formula"] = ("model = 6*N*D; actual = 2ND policy forward + 2ND backward to the activations"
                              + (" + 2ND reference forward" if args.reference == "disabled-adapter" else "")
                              + "; N = matmul params (7 projections per layer + LM head), D = N_resp*(P+C)")
    return model


def logprobs(args, model, ids, report):
    model.eval()
    reset_ok = reset_peak_rss(report)
    times, checksum = [], None
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        with torch.inference_mode():
            sums = sequence_logps(model, ids, args.prompt_len)
        el = (time.perf_counter() - t) * 1e3
        if i >= args.warmup:
            times.append(el)
            if checksum is None:
                checksum = float(sums.double().sum())
    report["steps_peak_rss_mib"] = status_mib("VmHWM") if reset_ok else None
    nd = report["matmul_params"] * args.n * (args.prompt_len + args.response_len)
    report.update(
        tokens_per_step=args.n * (args.prompt_len + args.response_len), step_ms=stats(times),
        forward_ms=stats(times), model_flops_per_step=2 * nd, actual_flops_per_step=2 * nd,
        flop_formula="2*N*D forward only (full logits at every position)", sum_logprobs=checksum,
    )


def generate(args, model, prompt, report):
    from transformers import LogitsProcessor, LogitsProcessorList

    model.eval()
    n, p, c = args.n, args.prompt_len, args.response_len
    rows = [prompt[i % p :] + prompt[: i % p] for i in range(n)]  # the prompt rotated, as lambda-dpo
    ids = torch.tensor(rows, dtype=torch.long)

    class FirstCall(LogitsProcessor):
        def __init__(self):
            self.t = None

        def __call__(self, input_ids, scores):
            if self.t is None:
                self.t = time.perf_counter()
            return scores

    reset_ok = reset_peak_rss(report)
    total, prefill, decode = [], [], []
    for i in range(args.warmup + args.steps):
        first = FirstCall()
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=c, min_new_tokens=c,
                do_sample=False, use_cache=True, pad_token_id=0, logits_processor=LogitsProcessorList([first]),
            )
        end = time.perf_counter()
        assert out.shape == (n, p + c), out.shape
        if i >= args.warmup:
            total.append((end - t) * 1e3)
            prefill.append((first.t - t) * 1e3)
            decode.append((end - first.t) * 1e3)
    report["steps_peak_rss_mib"] = status_mib("VmHWM") if reset_ok else None
    dm = statistics.median(decode)
    nd = report["matmul_params"] * n * (p + c - 1)
    report.update(
        tokens_per_step=n * c, step_ms=stats(total), prefill_ms=stats(prefill), decode_ms=stats(decode),
        decode_tokens_per_s=n * (c - 1) / (dm / 1e3) if c > 1 and dm > 0 else None,
        model_flops_per_step=2 * nd, actual_flops_per_step=2 * nd,
        flop_formula="2*N*D, D = N_prompts*(P + C - 1) tokens fed",
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", choices=["train-step", "logprobs", "generate"])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--preset", choices=["tiny", "qwen40m", "qwen05b"])
    g.add_argument("--model")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--response-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reference", choices=["disabled-adapter", "cache", "none"], default="disabled-adapter")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RAYON_NUM_THREADS", 0)) or os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.model and not args.preset:
        args.preset = "tiny"
    torch.set_num_threads(args.threads)
    import transformers

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model, name = build_model(args, dtype)
    total, matmul = param_counts(model)
    prompt, responses = token_ids(args.seed, model.config.vocab_size, args.n, args.prompt_len, args.response_len)
    ids = torch.tensor([prompt + r for r in responses], dtype=torch.long)  # [N, P+C]
    report = {
        "tool": "torch", "version": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "bench": args.bench, "model": name, "architecture": model.config.architectures[0] if model.config.architectures else type(model).__name__,
        "params": total, "matmul_params": matmul, "n": args.n, "prompt_len": args.prompt_len,
        "response_len": args.response_len, "steps": args.steps, "warmup": args.warmup, "dtype": args.dtype,
        "threads": args.threads, "reference": None, "lora_r": None, "lora_params": None, "chunk_size": None,
        "forward_ms": None, "backward_ms": None, "prefill_ms": None, "decode_ms": None, "decode_tokens_per_s": None,
        "loss_first": None, "loss_last": None, "sum_logprobs": None, "rss_before_steps_mib": None,
        "setup_peak_rss_mib": None,
    }
    if args.bench == "train-step":
        import peft

        report["version"] += f", peft {peft.__version__}"
        train_step(args, model, ids, report)
    elif args.bench == "logprobs":
        logprobs(args, model, ids, report)
    else:
        generate(args, model, prompt, report)
    # Before the matmul below (not part of the workload); the steps' mark was reset at their
    # start, so the process peak is the larger of the two.
    if report["steps_peak_rss_mib"] is not None:
        report["peak_rss_mib"] = max(report["setup_peak_rss_mib"], report["steps_peak_rss_mib"])
    else:
        report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = matmul_peak_flops()
    step_s = report["step_ms"]["median"] / 1e3
    report["matmul_peak_gflops"] = peak / 1e9
    report["tokens_per_s"] = report["tokens_per_step"] / step_s
    report["mfu"] = report["model_flops_per_step"] / step_s / peak
    report["mfu_actual"] = report["actual_flops_per_step"] / step_s / peak
    if args.json:
        print(json.dumps(report, indent=2))
        return
    r = report
    print(f"torch reference {r['bench']} — {r['model']} ({r['architecture']}, {r['params'] / 1e6:.1f}M params, "
          f"{r['matmul_params'] / 1e6:.1f}M in matmuls); {r['version']}")
    print(f"workload   N={r['n']} P={r['prompt_len']} C={r['response_len']}, reference {r['reference']}, "
          f"{r['dtype']}, {r['threads']} threads, {r['steps']} measured steps after {r['warmup']} warm-up")
    print(f"tokens     {r['tokens_per_step']} per step\n")
    print(f"{'':<22} {'median':>10} {'min':>10} {'max':>10}")
    for key, label in [("step_ms", "step (ms)"), ("forward_ms", "  forward (ms)"), ("backward_ms", "  backward+opt (ms)"),
                       ("prefill_ms", "  prefill (ms)"), ("decode_ms", "  decode (ms)")]:
        if r.get(key) and not (key == "forward_ms" and r["bench"] == "logprobs"):
            st = r[key]
            print(f"{label:<22} {st['median']:>10.1f} {st['min']:>10.1f} {st['max']:>10.1f}")
    print(f"\ntokens/s               {r['tokens_per_s']:>10.0f}  (per median step)")
    if r["decode_tokens_per_s"]:
        print(f"decode tokens/s        {r['decode_tokens_per_s']:>10.0f}")
    srss = f"{r['steps_peak_rss_mib']:.1f} MiB" if r["steps_peak_rss_mib"] else "n/a"
    base = f"{r['rss_before_steps_mib']:.1f} MiB" if r["rss_before_steps_mib"] else "n/a"
    print(f"peak RSS               {r['peak_rss_mib']:.1f} MiB whole process: {r['setup_peak_rss_mib']:.1f} MiB imports, model "
          f"and setup, {srss} during the steps (from {base} at their start)")
    print(f"matmul peak            {r['matmul_peak_gflops']:.1f} GFLOP/s (f32 torch.matmul 1024^3, best of 30)")
    print(f"MFU                    {100 * r['mfu']:.2f} % model FLOPs ({r['model_flops_per_step'] / 1e9:.2f} GFLOP/step), "
          f"{100 * r['mfu_actual']:.2f} % actual ({r['actual_flops_per_step'] / 1e9:.2f} GFLOP/step)")
    print(f"FLOPs                  {r['flop_formula']}")
    if r["loss_first"] is not None:
        print(f"loss                   {r['loss_first']:.6f} -> {r['loss_last']:.6f}")
    if r["sum_logprobs"] is not None:
        print(f"sum log-probs          {r['sum_logprobs']:.4f}")


if __name__ == "__main__":
    main()
