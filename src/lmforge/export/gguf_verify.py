"""Prove a GGUF file computes what the merged model computes, before it is published.

The file is reloaded by code we did not write (transformers' GGUF loader: its own config rebuild from our
metadata, its own reverse q/k permutation, its own tokenizer rebuild from our vocabulary and pre-tokenizer name)
and compared on fixed inputs with:
  * the merged model with each tensor rounded through the same GGUF type in HF layout ("rounded"). Block
    quantisation works along rows, which the q/k permutation only reorders, so any layout, name or metadata bug
    shows here at every type; the tolerance is tight;
  * the merged fp32 model: the quantisation error itself, bounded per type (QUANT_TOLERANCE, relative to the
    largest logit);
  * greedy continuations of fixed prompts (must equal the rounded model's);
  * tokenisation of a probe corpus (Chinese, emoji, code, whitespace runs, special tokens): ids and decoded text.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from lmforge.export.gguf_arch import GGUFArch, named_tensors
from lmforge.export.gguf_file import rounded, tensor_type
from lmforge.export.verify import ExportError, fixed_inputs, logits_of

#: GGUF reload vs the rounded merged model, max abs logit diff / max abs logit (float op order only)
LAYOUT_TOLERANCE = 1e-4
#: GGUF reload vs the unrounded fp32 merged model, max abs logit diff / max abs logit. Measured on the tiny test
#: models (docs/export.md): f16 5e-4, bf16 4e-3, q8_0 1.2e-2, q4_0 0.12; the bounds leave ~2-4x headroom.
QUANT_TOLERANCE = {"f32": 1e-5, "f16": 2e-3, "bf16": 1.5e-2, "q8_0": 4e-2, "q4_0": 0.3}
GREEDY_TOKENS = 8
PROBE_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "机器学习是人工智能的一个分支。你好，世界！",
    "Emoji: 🙂🚀👩‍💻 and flags 🇫🇷; accents: café naïve Ångström",
    "def f(x):\n\tif x  >  0:\n        return x ** 2  # square\n    return {'a': [1, 2, 3]}\n",
    "runs of whitespace:     four  two\n\n\n three newlines \t\t tabs   ",
    "numbers 1234567890 3.14159 -42 1e-9",
)


def rounded_model(model: Any, arch: GGUFArch, kind: str) -> Any:
    """A copy of `model` whose tensors went through the GGUF type they are written with (HF layout)."""
    twin = copy.deepcopy(model)
    state = twin.state_dict()
    with torch.no_grad():
        for hf_name, gguf_name, data in named_tensors(model, arch):
            qtype = tensor_type(gguf_name, data, kind)
            state[hf_name].copy_(torch.from_numpy(rounded(data, qtype)))
    return twin


def relative_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))


@torch.no_grad()
def greedy(model: Any, prompt: list[int]) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=GREEDY_TOKENS,
        do_sample=False,
        min_new_tokens=GREEDY_TOKENS,
    )
    return out[0, len(prompt) :].tolist()


def check_tokenizer(folder: Path, filename: str, tokenizer: Any) -> int:
    """The tokenizer rebuilt from the GGUF encodes and decodes the probe corpus like the HF tokenizer."""
    from transformers import AutoTokenizer

    rebuilt = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
    probes = [*PROBE_TEXTS, "".join(t for t in tokenizer.all_special_tokens) + " after specials"]
    for text in probes:
        want = tokenizer(text, add_special_tokens=False).input_ids
        got = rebuilt(text, add_special_tokens=False).input_ids
        if got != want:
            raise ExportError(
                f"GGUF tokenizer check failed on {text[:40]!r}: GGUF ids {got[:12]}... != HF ids {want[:12]}...; "
                "llama.cpp would tokenise differently from training"
            )
        if rebuilt.decode(got) != tokenizer.decode(want):
            raise ExportError(f"GGUF tokenizer check failed: decoding {text[:40]!r} differs from the HF tokenizer")
    return len(probes)


def verify_gguf(
    folder: Path, filename: str, model: Any, tokenizer: Any, arch: GGUFArch, kind: str, prompts: list[list[int]]
) -> dict[str, Any]:
    """All checks on the written file; returns the numbers, raises `ExportError` naming the first failure."""
    from transformers import AutoModelForCausalLM

    try:
        reloaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename, dtype=torch.float32).eval()
    except Exception as exc:  # a malformed file must be reported as a failed check, not a traceback
        raise ExportError(f"the GGUF file does not reload with transformers: {type(exc).__name__}: {exc}") from exc
    reference = rounded_model(model, arch, kind)
    inputs = fixed_inputs(min(len(tokenizer), model.config.vocab_size))
    got = logits_of(reloaded, inputs)
    numbers: dict[str, Any] = {
        "gguf_vs_rounded": relative_diff(got, logits_of(reference, inputs)),
        "gguf_vs_merged": relative_diff(got, logits_of(model, inputs)),
    }
    if not numbers["gguf_vs_rounded"] <= LAYOUT_TOLERANCE:
        raise ExportError(
            f"GGUF logits differ from the merged model rounded to {kind}: relative max diff "
            f"{numbers['gguf_vs_rounded']:.3g} > {LAYOUT_TOLERANCE:g}; tensors are misplaced or mis-permuted "
            "or the metadata describes another model"
        )
    if not numbers["gguf_vs_merged"] <= QUANT_TOLERANCE[kind]:
        raise ExportError(
            f"GGUF ({kind}) logits are too far from the merged model: relative max diff "
            f"{numbers['gguf_vs_merged']:.3g} > {QUANT_TOLERANCE[kind]:g}"
        )
    same = [greedy(reloaded, p) == greedy(reference, p) for p in prompts]
    if not all(same):
        raise ExportError(
            f"GGUF greedy continuation differs from the rounded merged model on prompt {same.index(False)}"
        )
    numbers["greedy_prompts"] = len(prompts)
    numbers["greedy_same_as_merged"] = sum(greedy(reloaded, p) == greedy(model, p) for p in prompts)
    numbers["tokenizer_probes"] = check_tokenizer(folder, filename, tokenizer)
    return numbers
