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
#: k-quants on a hidden-256 test model: q4_k_m 0.15, q5_k_m 0.086, q6_k 0.054 (q4_0 there: 0.19).
QUANT_TOLERANCE |= {"q4_k_m": 0.35, "q5_k_m": 0.2, "q6_k": 0.15}
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


def probe_texts(tokenizer: Any) -> list[str]:
    return [*PROBE_TEXTS, "".join(tokenizer.all_special_tokens) + " after specials"]


def check_tokenizer(folder: Path, filename: str, tokenizer: Any) -> int:
    """The tokenizer rebuilt from the GGUF encodes and decodes the probe corpus like the HF tokenizer."""
    from transformers import AutoTokenizer

    rebuilt = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
    probes = probe_texts(tokenizer)
    for text in probes:
        want = tokenizer(text, add_special_tokens=False).input_ids
        _same_ids(rebuilt(text, add_special_tokens=False).input_ids, want, text, "GGUF (transformers)")
        if rebuilt.decode(want) != tokenizer.decode(want):
            raise ExportError(f"GGUF tokenizer check failed: decoding {text[:40]!r} differs from the HF tokenizer")
    return len(probes)


def _same_ids(got: list[int], want: list[int], text: str, who: str) -> None:
    if got != want:
        raise ExportError(
            f"GGUF tokenizer check failed on {text[:40]!r}: {who} ids {got[:12]}... != HF ids {want[:12]}...; "
            "llama.cpp would tokenise differently from training"
        )


def check_llamacpp(path: Path, tokenizer: Any, reference: Any, ids: list[int], tolerance: float) -> dict[str, Any]:
    """llama.cpp's own tokenizer and forward pass on the file (only when llama-cpp-python is installed)."""
    from lmforge.export import gguf_llamacpp

    probes = probe_texts(tokenizer)
    for text, got in zip(probes, gguf_llamacpp.tokenize(path, probes), strict=True):
        _same_ids(got, tokenizer(text, add_special_tokens=False).input_ids, text, "llama.cpp")
    want = logits_of(reference, torch.tensor([ids]))[0]
    diff = relative_diff(torch.from_numpy(gguf_llamacpp.logits(path, ids)), want)
    if not diff <= tolerance:
        raise ExportError(
            f"llama.cpp logits differ from the reference: relative max diff {diff:.3g} > {tolerance:g}; the file "
            "loads in transformers but llama.cpp reads it differently"
        )
    return {"llamacpp_vs_reference": diff, "llamacpp_tokenizer_probes": len(probes)}


def verify_gguf(
    folder: Path, filename: str, model: Any, tokenizer: Any, arch: GGUFArch, kind: str, prompts: list[list[int]]
) -> dict[str, Any]:
    """All checks on the written file; returns the numbers, raises `ExportError` naming the first failure.

    For the types we write, the reference is the merged model rounded to that type; for k-quants (written by
    llama.cpp from a verified f32 file) it is transformers' dequantisation of the same file."""
    from transformers import AutoModelForCausalLM

    from lmforge.export import gguf_llamacpp

    try:
        reloaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename, dtype=torch.float32).eval()
    except Exception as exc:  # a malformed file must be reported as a failed check, not a traceback
        raise ExportError(f"the GGUF file does not reload with transformers: {type(exc).__name__}: {exc}") from exc
    inputs = fixed_inputs(min(len(tokenizer), model.config.vocab_size))
    got = logits_of(reloaded, inputs)
    numbers: dict[str, Any] = {"gguf_vs_merged": relative_diff(got, logits_of(model, inputs))}
    reference = reloaded
    if kind not in gguf_llamacpp.K_QUANTS:
        reference = rounded_model(model, arch, kind)
        numbers["gguf_vs_rounded"] = relative_diff(got, logits_of(reference, inputs))
        if not numbers["gguf_vs_rounded"] <= LAYOUT_TOLERANCE:
            raise ExportError(
                f"GGUF logits differ from the merged model rounded to {kind}: relative max diff "
                f"{numbers['gguf_vs_rounded']:.3g} > {LAYOUT_TOLERANCE:g}; tensors are misplaced or mis-permuted "
                "or the metadata describes another model"
            )
        same = [greedy(reloaded, p) == greedy(reference, p) for p in prompts]
        if not all(same):
            raise ExportError(f"GGUF greedy text differs from the rounded merged model on prompt {same.index(False)}")
    if not numbers["gguf_vs_merged"] <= QUANT_TOLERANCE[kind]:
        raise ExportError(
            f"GGUF ({kind}) logits are too far from the merged model: relative max diff "
            f"{numbers['gguf_vs_merged']:.3g} > {QUANT_TOLERANCE[kind]:g}"
        )
    numbers["greedy_prompts"] = len(prompts)
    numbers["greedy_same_as_merged"] = sum(greedy(reloaded, p) == greedy(model, p) for p in prompts)
    numbers["tokenizer_probes"] = check_tokenizer(folder, filename, tokenizer)
    if gguf_llamacpp.installed():
        tolerance = gguf_llamacpp.LLAMACPP_TOLERANCE.get(kind, gguf_llamacpp.KQUANT_LLAMACPP_TOLERANCE)
        numbers |= check_llamacpp(folder / filename, tokenizer, reference, inputs[0].tolist(), tolerance)
    return numbers
