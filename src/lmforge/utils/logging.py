"""Readable console logging shared by all commands."""

from __future__ import annotations

import logging
import os

_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """Logger under the `lmforge` namespace; configured once, quiet on non-zero ranks."""
    root = logging.getLogger("lmforge")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
        rank = int(os.environ.get("RANK", "0"))
        root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
        root.propagate = False
    return logging.getLogger(name if name.startswith("lmforge") else f"lmforge.{name}")
