"""Generation backends of `lmforge serve`. `hf` (transformers, in-process dynamic batching) is built in.

vLLM is an optional GPU backend that this version of lmforge does not drive itself: without vLLM installed,
`--backend vllm` stops with an install hint; with it installed, it points at vLLM's own OpenAI server, which serves
an exported (merged) lmforge model with the same API.
"""

from __future__ import annotations

import importlib.util

from lmforge.utils.errors import ConfigError

VLLM_HINT = (
    "pip install vllm (Linux with an NVIDIA GPU; see https://docs.vllm.ai/en/latest/getting_started/installation/)"
)


def require_vllm() -> None:
    """Raise a ConfigError explaining how to serve with vLLM; never pretends to serve through it."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"--backend vllm needs the vllm package, which is not installed: {VLLM_HINT}")
    raise ConfigError(
        "--backend vllm is not built into lmforge serve yet; vllm is installed, so serve an exported model with "
        "vLLM's own OpenAI-compatible server (same API): `lmforge export ... --output DIR` then "
        "`vllm serve DIR --api-key KEY` (vLLM applies the chat template stored in DIR by the export)"
    )
