#!/usr/bin/env python
"""Probe where LoRA-SFT step time goes on CPU, to choose the trainer path (padding vs padding-free, checkpointing,
attention kernel, logits) before and independently of the toolkit.

Same workload as the peer benchmark (alpaca_en_demo, ChatML, cutoff 512, batch 4, 30 steps, LoRA r8 all-linear,
lr 1e-4 cosine, seed 42, fp32), tokenised here with the tokenizer's chat template so it runs without lmforge.
Each variant runs in its own process (clean peak RSS) and prints one `PROBE {json}` line.

  python bench/profile_step.py MODEL_DIR --data alpaca_en_demo.json                # all presets
  python bench/profile_step.py MODEL_DIR --data ... --variants c,d --profile       # + torch.profiler breakdown

Presets: a = padded + grad-ckpt (what LLaMA-Factory does); b = padded; c = padding-free (one row, position_ids
restart, no attention_mask: transformers builds a block-diagonal mask); d = bare fwd/bwd/AdamW loop on c's batches;
e = c with per-sample causal SDPA (no mask); f = e + logits only where labels are trained; g = bare loop of f;
h = e with grad-ckpt (memory).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from cpu_load import machine_busy_s, own_cpu_s

PRESETS = {
    "a": dict(pad="padded", ckpt=True, loop="trainer", attn="sdpa", sparse=False),
    "b": dict(pad="padded", ckpt=False, loop="trainer", attn="sdpa", sparse=False),
    "c": dict(pad="free", ckpt=False, loop="trainer", attn="sdpa", sparse=False),
    "d": dict(pad="free", ckpt=False, loop="bare", attn="sdpa", sparse=False),
    "e": dict(pad="free", ckpt=False, loop="trainer", attn="segments", sparse=False),
    "f": dict(pad="free", ckpt=False, loop="trainer", attn="segments", sparse=True),
    "g": dict(pad="free", ckpt=False, loop="bare", attn="segments", sparse=True),
    "h": dict(pad="free", ckpt=True, loop="trainer", attn="segments", sparse=False),
}


def encode(data_path: str, tok, cutoff: int) -> list[dict]:
    """ChatML rows with the prompt masked; prompt and answer tokenised separately (as LLaMA-Factory does)."""
    rows = []
    with open(data_path, encoding="utf-8") as f:
        examples = json.load(f)
    for ex in examples:
        user = ex["instruction"] + ("\n" + ex["input"] if ex.get("input") else "")
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tok(ex["output"] + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
        ids = (p_ids + r_ids)[:cutoff]
        rows.append({"input_ids": ids, "labels": ([-100] * len(p_ids) + r_ids)[:cutoff]})
    return rows


def encode_pt(paths: list[str], tok, block: int) -> list[dict]:
    """Documents + EOS, concatenated and cut into `block`-token rows (LLaMA-Factory's pt stage)."""
    ids: list[int] = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs = [json.loads(x)["text"] if path.endswith(".jsonl") else x for x in f if x.strip()]
        for d in docs:
            ids += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return [
        {"input_ids": ids[i : i + block], "labels": ids[i : i + block]} for i in range(0, len(ids) - block + 1, block)
    ]


def collate_padded(rows: list[dict], pad_id: int, multiple: int = 8) -> dict:
    import torch

    n = max(len(r["input_ids"]) for r in rows)
    n = (n + multiple - 1) // multiple * multiple
    ids = torch.full((len(rows), n), pad_id)
    labels = torch.full((len(rows), n), -100)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        k = len(r["input_ids"])
        ids[i, :k], labels[i, :k], mask[i, :k] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def collate_free(rows: list[dict]) -> dict:
    import torch

    ids, labels, pos = [], [], []
    for r in rows:
        ids += r["input_ids"]
        labels += [-100, *r["labels"][1:]]
        pos += range(len(r["input_ids"]))
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": torch.tensor([pos])}


def segment_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Causal SDPA run per packed sample (found from position_ids): no block mask, no cross-sample work."""
    import torch

    pos = kwargs["position_ids"][0]
    starts = [*(pos == 0).nonzero().flatten().tolist(), pos.numel()]
    outs = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], is_causal=True, scale=scaling
        )
        for s, e in itertools.pairwise(starts)
    ]
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def sparse_loss(model, batch: dict):
    """Cross-entropy computing lm_head logits only at positions whose next token is trained."""
    import torch

    labels = batch["labels"]
    keep = (labels[0, 1:] != -100).nonzero().flatten()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, logits_to_keep=keep).logits[0]
    return torch.nn.functional.cross_entropy(logits.float(), labels[0, keep + 1])


def build(args, v: dict):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AttentionInterface, AutoModelForCausalLM, AutoTokenizer

    AttentionInterface.register("segments", segment_sdpa)
    tok = AutoTokenizer.from_pretrained(args.model)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation=v["attn"])
    if args.method == "lora":
        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, cfg)
    if v["ckpt"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
    return tok, model


def make_trainer(args, v: dict, tok, model, rows, out_dir: str):
    from transformers import PrinterCallback, Trainer, TrainingArguments

    targs = TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=args.batch,
        max_steps=args.steps,
        learning_rate=1e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        seed=args.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=True,
        disable_tqdm=True,
    )
    pad = tok.pad_token_id
    collate = (lambda b: collate_padded(b, pad)) if v["pad"] == "padded" else collate_free

    class ProbeTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if v["sparse"] and not return_outputs:
                return sparse_loss(model, inputs)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    trainer = ProbeTrainer(model=model, args=targs, train_dataset=rows, data_collator=collate, processing_class=tok)
    trainer.remove_callback(PrinterCallback)
    return trainer


def bare_loop(args, v: dict, model, batches: list[dict]) -> float:
    """fwd + bwd + AdamW + cosine schedule, nothing else; returns seconds."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    sched = get_cosine_schedule_with_warmup(opt, 0, len(batches))
    model.train()
    t0 = time.perf_counter()
    for batch in batches:
        loss = sparse_loss(model, batch) if v["sparse"] else model(**batch).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def run_variant(args, name: str) -> dict:
    import torch

    v = PRESETS[name]
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    tok, model = build(args, v)
    if args.stage == "pt":
        rows = encode_pt(args.data.split(","), tok, args.cutoff)
    else:
        rows = encode(args.data, tok, args.cutoff)
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(args, v, tok, model, rows, out)
        batches = [b for _, b in zip(range(args.steps), trainer.get_train_dataloader(), strict=False)]
        tokens = sum(int((b["input_ids"] != tok.pad_token_id).sum()) for b in batches)
        padded = sum(b["input_ids"].numel() for b in batches)
        prof = _profiler() if args.profile else None
        stat0, own0 = machine_busy_s(), own_cpu_s()
        if prof:
            prof.__enter__()
        if v["loop"] == "bare":
            secs, losses = bare_loop(args, v, model, batches), []
        else:
            trainer.train()
            hist = trainer.state.log_history
            secs = hist[-1]["train_runtime"]
            losses = [h["loss"] for h in hist if "loss" in h]
        foreign = max(0.0, machine_busy_s() - stat0 - (own_cpu_s() - own0)) / (secs * (os.cpu_count() or 1))
        if prof:
            prof.__exit__(None, None, None)
    res = {
        "variant": name,
        **v,
        "method": args.method,
        "stage": args.stage,
        "threads": torch.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "steps": args.steps,
        "tokens": tokens,
        "padded_tokens": padded,
        "train_s": round(secs, 3),
        "tokens_per_s": round(tokens / secs, 1),
        "s_per_step": round(secs / args.steps, 4),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "total_s": round(time.perf_counter() - t_start, 2),
        "foreign_cpu_frac": round(foreign, 3),
    }
    if prof:
        res["profile"] = _breakdown(prof, secs)
    return res


def wait_quiet(max_wait: float = 180.0, busy_frac: float = 0.1) -> None:
    """Wait until the machine is idle (like the harness's wait_quiet) so timings are comparable."""
    deadline = time.time() + max_wait
    while time.time() < deadline:
        b0 = machine_busy_s()
        time.sleep(2.0)
        if (machine_busy_s() - b0) / (2.0 * (os.cpu_count() or 1)) < busy_frac:
            return
    print("wait_quiet: machine still busy, running anyway", file=sys.stderr)


def _profiler():
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU])


CATEGORIES = [  # first match wins; matched against the op name (self time)
    ("loss_logits", ("cross_entropy", "log_softmax", "nll_loss")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "softmax", "baddbmm", "bmm")),
    ("optimizer", ("_foreach", "adamw", "lerp", "addcdiv", "sqrt")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear")),
    ("elementwise_copy", ("aten::",)),
]


def _breakdown(prof, wall_s: float) -> dict:
    """Self CPU time per category; `python_other` = wall time not inside any aten op (trainer, modules, Python)."""
    cats = {c: 0.0 for c, _ in CATEGORIES}
    top = []
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        t = e.self_cpu_time_total / 1e6
        top.append((t, e.key, e.count))
        low = e.key.lower()
        for cat, pats in CATEGORIES:
            if any(p in low for p in pats):
                cats[cat] += t
                break
    out = {k: round(t, 3) for k, t in cats.items()}
    out["python_other"] = round(wall_s - sum(cats.values()), 3)
    out["top_ops"] = [f"{k} {t:.3f}s x{n}" for t, k, n in sorted(top, reverse=True)[:15]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--data", default="/work/shared/bench/data/alpaca_en_demo.json")
    ap.add_argument("--variants", default="a,b,c,d,e,f,g,h")
    ap.add_argument("--method", default="lora", choices=["lora", "full"])
    ap.add_argument("--stage", default="sft", choices=["sft", "pt"], help="pt: --data is a comma list of text files")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--cutoff", type=int, default=512)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler self-time breakdown per category")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print("PROBE " + json.dumps(run_variant(a, a.one)), flush=True)
        return
    for name in a.variants.split(","):
        wait_quiet()
        argv = [
            x for i, x in enumerate(sys.argv[1:]) if not x.startswith("--variants") and sys.argv[i] != "--variants"
        ]
        subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--one", name], check=False)


if __name__ == "__main__":
    main()
