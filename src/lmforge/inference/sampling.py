"""The one sampling type of every generation path.

`GenerationOptions` is what `lmforge chat` flags, the eval `generate:` section, the API request fields, RL rollouts
and in-process callers all become before a token is picked, so its defaults are the only ones: greedy
(temperature 0), no top-p / top-k truncation, no repetition penalty, 512 new tokens. Greedy by default makes every
path reproducible and batch-independent unless sampling is asked for; the API follows the same default when a
request sends no `temperature` (OpenAI's nominal default is 1.0; lm-evaluation-harness and the RL judge send it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmforge.utils.errors import ConfigError

#: temperatures below this decode greedily (dividing logits by ~1e-38 overflows to inf and NaN probabilities)
MIN_TEMPERATURE = 1e-5


def _option(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class GenerationOptions:
    """How tokens are picked; applied per row, so rows with different options share a batch."""

    max_new_tokens: int = _option(512, "Most new tokens per reply (a stop id ends it earlier).")
    temperature: float = _option(0.0, "0 = greedy (default: reproducible, batch-independent); > 0 samples.")
    top_p: float = _option(1.0, "Nucleus sampling mass, in (0, 1]; 1 = off (temperature > 0).")
    top_k: int = _option(0, "Sample from the k most likely tokens; 0 = off (temperature > 0).")
    repetition_penalty: float = _option(1.0, "> 1 discourages tokens already in the prompt or reply; 1 = off.")
    seed: int | None = _option(None, "Seed for sampling: the same seed gives the same reply, whatever the batch.")

    def __post_init__(self) -> None:
        checks = [
            ("max_new_tokens", self.max_new_tokens >= 0, ">= 0"),
            ("temperature", self.temperature >= 0, ">= 0"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("top_k", self.top_k >= 0, ">= 0"),
            ("repetition_penalty", self.repetition_penalty > 0, "> 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"generation option {name} must be {expected}, got {getattr(self, name)}")
        if self.temperature < MIN_TEMPERATURE:
            object.__setattr__(self, "temperature", 0.0)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0
