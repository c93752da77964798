"""Python reward callables named in the config as 'package.module:function'.

A reward function is called with keyword arguments only and returns one number per completion:
``fn(completions=[...], prompts=[...], references=[...], completion_ids=[...], ended=[...], **config_kwargs)``.
It receives the arguments its signature names (all of them if it takes ``**kwargs``), so TRL-style functions
``fn(prompts, completions, **kwargs)`` work unchanged. Import and signature problems are reported at startup,
naming the config key.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from lmforge.rl.rewards import RewardBatch
from lmforge.utils.errors import ConfigError, did_you_mean

BATCH_ARGS = ("completions", "prompts", "references", "completion_ids", "ended", "messages")


def import_callable(spec: str, key: str) -> Callable[..., Any]:
    """'module:function' (or 'module.function') -> the function; errors name the key and the reason."""
    module_name, _sep, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{key}: {spec!r} is not 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}: cannot import module {module_name!r} for reward function {spec!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ConfigError(f"{key}: module {module_name!r} has no attribute {attr!r} (reward function {spec!r})")
    if not callable(fn):
        raise ConfigError(f"{key}: {spec!r} is a {type(fn).__name__}, not a function")
    return fn


def check_signature(fn: Callable[..., Any], spec: str, key: str, kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The batch arguments `fn` takes; a parameter we cannot fill, or none for the completions, is an error."""
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    available = set(BATCH_ARGS) | set(kwargs)
    for name in kwargs:  # a typo in an option key is the likelier mistake, so report it first
        if not var_kw and name not in params:
            raise ConfigError(
                f"{key}: reward function {spec!r} takes no argument {name!r}{did_you_mean(name, params)}"
            )
    for name, param in params.items():
        if param.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY or (
            param.default is inspect.Parameter.empty and name not in available
        ):
            raise ConfigError(
                f"{key}: reward function {spec!r} has parameter {name!r} that cannot be filled; reward functions "
                f"are called with keywords {', '.join(BATCH_ARGS)} plus the extra keys of its config entry"
            )
    takes = tuple(a for a in BATCH_ARGS if var_kw or a in params)
    if not takes:
        raise ConfigError(f"{key}: reward function {spec!r} takes none of {', '.join(BATCH_ARGS)} (or **kwargs)")
    return takes


class CallableSource:
    """A reward source calling a Python function once per batch."""

    def __init__(self, fn: Callable[..., Any], spec: str, key: str, weight: float, kwargs: dict[str, Any]) -> None:
        self.fn, self.spec, self.key, self.weight, self.kwargs = fn, spec, key, weight, kwargs
        self.name = spec.rpartition(":")[2] or spec
        self.takes = check_signature(fn, spec, key, kwargs)
        self.failures: Counter = Counter()
        self.causes: dict[str, str] = {}

    @classmethod
    def from_config(cls, entry: Any, key: str) -> CallableSource:
        """'module:fn' or {func: 'module:fn', weight: w, other keys passed to the function}."""
        if isinstance(entry, str):
            return cls(import_callable(entry, key), entry, key, 1.0, {})
        if not isinstance(entry, dict) or not isinstance(entry.get("func"), str):
            raise ConfigError(f"{key}: expected 'module:function' or a mapping with a 'func' key, got {entry!r}")
        kwargs = {k: v for k, v in entry.items() if k not in ("func", "weight")}
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise ConfigError(f"{key}.weight: expected a number, got {weight!r}")
        return cls(import_callable(entry["func"], f"{key}.func"), entry["func"], key, float(weight), kwargs)

    def score(self, batch: RewardBatch) -> list[float | None]:
        values = {
            "completions": batch.completions,
            "prompts": batch.prompts,
            "references": batch.references,
            "completion_ids": batch.completion_ids,
            "ended": batch.ended,
            "messages": batch.messages,
        }
        out = self.fn(**{a: values[a] for a in self.takes}, **self.kwargs)
        return self._checked(out, len(batch))

    def _checked(self, out: Any, n: int) -> list[float | None]:
        """A list of n numbers (None marks a sample the function could not score); anything else is an error."""
        if hasattr(out, "tolist"):
            out = out.tolist()
        if not isinstance(out, (list, tuple)) or len(out) != n:
            got = f"{type(out).__name__} of length {len(out)}" if hasattr(out, "__len__") else type(out).__name__
            raise ConfigError(f"{self.key}: reward function {self.spec!r} must return {n} numbers, got {got}")
        scores: list[float | None] = []
        for value in out:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                self.failures["returned_none"] += 1
                scores.append(None)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                scores.append(float(value))
            else:
                raise ConfigError(f"{self.key}: reward function {self.spec!r} returned {value!r}, not a number")
        return scores
