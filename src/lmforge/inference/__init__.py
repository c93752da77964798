"""Use a trained model: a generation engine sharing training's prompt code, the chat command and the API server.

The engine names are loaded on first use, so light submodules (e.g. `inference.limits`, which the CLI reads to
build `lmforge serve --help`) do not pull in torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChatEngine", "Generated", "GenerationOptions", "generate_rows", "load_engine"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lmforge.inference import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'lmforge.inference' has no attribute {name!r}")
