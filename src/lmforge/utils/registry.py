"""A small named registry for tables of interchangeable things (templates, formats, methods, stages)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from lmforge.utils.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """A readable name -> object table; `get` on an unknown name lists the valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise ConfigError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; valid names: {valid}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
