"""The decode loop's key/value cache: columns written into spare room instead of a new concatenated copy per step.

transformers' `DynamicLayer` grows by `torch.cat([keys, new])`, which copies the whole cache at every decode step.
At batch 32 on a small model that copy was 42 % of a step's CPU time (torch.profiler, 32 rows of ~150 tokens),
more than the matmuls; with one row it is ~19 %. `RoomyLayer` keeps each layer's keys and values in a buffer with
spare columns, writes each step's column in place and copies only when the room runs out (then it grows by half,
so a row of n tokens is copied O(log n) times instead of n). Attention reads views of the filled columns, so it
does exactly the same maths as before (tested against transformers' own `DynamicCache`).

Rows leaving the batch, rows joining it (`merge`) and dropping padding columns that every row has left behind are
operations on these buffers too, so the batching worker never falls back to concatenation.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache, DynamicLayer

#: spare columns kept after a growth: at least this many, or half the filled length when that is more
MIN_SPARE = 64


class RoomyLayer(DynamicLayer):
    """A `DynamicLayer` whose `keys` / `values` are views `[rows, heads, :length]` of larger buffers."""

    def __init__(self) -> None:
        self._key_room: torch.Tensor | None = None
        self._value_room: torch.Tensor | None = None
        self.length = 0
        super().__init__()

    # transformers reads (and its helpers assign) `keys` / `values`: views of the filled columns
    @property  # type: ignore[override]
    def keys(self) -> torch.Tensor | None:
        return None if self._key_room is None else self._key_room[:, :, : self.length]

    @keys.setter
    def keys(self, tensor: torch.Tensor | None) -> None:
        self._key_room, self.length = _adopt(tensor)

    @property  # type: ignore[override]
    def values(self) -> torch.Tensor | None:
        return None if self._value_room is None else self._value_room[:, :, : self.length]

    @values.setter
    def values(self, tensor: torch.Tensor | None) -> None:  # assigned with `keys`, which sets the length
        self._value_room, _ = _adopt(tensor)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        end = self.length + new
        if self._key_room is None or self._value_room is None or end > self._key_room.shape[-2]:
            self._grow(key_states, value_states, end)
        assert self._key_room is not None and self._value_room is not None
        self._key_room[:, :, self.length : end] = key_states
        self._value_room[:, :, self.length : end] = value_states
        self.length = end
        return self._key_room[:, :, :end], self._value_room[:, :, :end]

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, needed: int) -> None:
        """New buffers with room for `needed` columns plus spare, the filled columns copied over."""
        capacity = needed + max(MIN_SPARE, needed // 2)
        rooms = []
        for old, new in ((self._key_room, key_states), (self._value_room, value_states)):
            room = new.new_empty((*new.shape[:2], capacity, new.shape[-1]))
            if old is not None and self.length:
                room[:, :, : self.length] = old[:, :, : self.length]
            rooms.append(room)
        self._key_room, self._value_room = rooms

    def hold(self, key_room: torch.Tensor, value_room: torch.Tensor, length: int) -> None:
        """Take these buffers as the layer's, their first `length` columns filled."""
        self.dtype, self.device, self.is_initialized = key_room.dtype, key_room.device, True
        self._key_room, self._value_room, self.length = key_room, value_room, length

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows `indices` (spare room kept, so the next step writes in place)."""
        if self._key_room is not None and self._value_room is not None:
            self._key_room, self._value_room = self._key_room[indices], self._value_room[indices]

    def drop_leading(self, columns: int) -> None:
        """Forget the first `columns` columns (padding every row has left behind); no copy, the room is kept."""
        if self._key_room is not None and self._value_room is not None and columns:
            self._key_room, self._value_room = self._key_room[:, :, columns:], self._value_room[:, :, columns:]
            self.length -= columns


class RoomyCache(DynamicCache):
    """A `DynamicCache` made of `RoomyLayer`s, added lazily per model layer as `DynamicCache()` adds its own."""

    def __init__(self, layers: list[RoomyLayer] | None = None) -> None:
        if layers:
            filled: list[CacheLayerMixin] = [*layers]
            Cache.__init__(self, layers=filled)  # type: ignore[arg-type]  # transformers' own list type is invariant
        else:
            Cache.__init__(self, layer_class_to_replicate=RoomyLayer)

    @classmethod
    def from_tensors(cls, tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> RoomyCache:
        """A cache holding these per-layer (keys, values), e.g. a PEFT prefix or a merged batch."""
        layers = []
        for keys, values in tensors:
            layer = RoomyLayer()
            layer.update(keys, values)
            layers.append(layer)
        return cls(layers)

    @classmethod
    def merged(cls, old: Cache, new: Cache, width: int) -> RoomyCache:
        """One cache holding `old`'s rows then `new`'s, every row right-aligned to `width` columns, written straight
        into buffers with spare room. The columns left of a shorter row are zeros: masked, but they must be finite
        for the masked attention scores to stay finite."""
        layers = []
        for a, b in zip(old.layers, new.layers, strict=True):
            (a_keys, a_values), (b_keys, b_values) = _filled(a), _filled(b)
            rows, heads, _, dim = a_keys.shape
            shape = (rows + b_keys.shape[0], heads, width + max(MIN_SPARE, width // 2), dim)
            key_room, value_room = a_keys.new_empty(shape), a_values.new_empty(shape)
            for room, top, bottom in ((key_room, a_keys, b_keys), (value_room, a_values, b_values)):
                _right_align(room[:rows], top, width)
                _right_align(room[rows:], bottom, width)
            layer = RoomyLayer()
            layer.hold(key_room, value_room, width)
            layers.append(layer)
        return cls(layers)


def _right_align(room: torch.Tensor, tensor: torch.Tensor, width: int) -> None:
    """Write `tensor` into the last of `room`'s first `width` columns, zeros before it."""
    start = width - tensor.shape[-2]
    room[:, :, :start] = 0
    room[:, :, start:width] = tensor


def _filled(layer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A key/value layer's (keys, values), which merging needs filled."""
    keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
    if keys is None or values is None:
        raise ValueError(f"cannot merge a {type(layer).__name__} without keys and values")
    return keys, values


def _adopt(tensor: torch.Tensor | None) -> tuple[torch.Tensor | None, int]:
    """(room, filled length) for a tensor assigned to `keys` / `values` (transformers' own helpers assign them)."""
    if tensor is None or tensor.dim() != 4:
        return None, 0
    return tensor, tensor.shape[-2]


def is_roomy(cache: Any) -> bool:
    """Whether rows can join, leave and shed padding on this cache in place: every layer a filled RoomyLayer."""
    layers = getattr(cache, "layers", None) or []
    return bool(layers) and all(isinstance(layer, RoomyLayer) and layer.is_initialized for layer in layers)
