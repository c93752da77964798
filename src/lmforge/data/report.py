"""What preprocessing did to the data: rows read, kept, truncated, dropped (with reasons), and lengths."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lmforge.utils.errors import DataError

LENGTH_DROP_WARN = 0.05  # share of examples dropped for length above which a run warns
BAD_ROWS_FILE = "bad_rows.jsonl"  # written into train.output_dir when data.on_bad_row is skip


@dataclass
class DatasetCounts:
    """Per-dataset counts; `dropped` maps a reason to a row count."""

    name: str
    read: int = 0
    kept: int = 0
    truncated: int = 0
    eos_cut: int = 0
    control_text: int = 0  # rows whose text contains special-token strings (kept as plain text, QUALITY A16)
    straddling: int = 0  # trained tokens that also cover template text (a merge across a reply's edge)
    stop_appended: int = 0  # rows whose final reply got the stop token the format itself does not write
    bad_rows: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def summary(self) -> str:
        drops = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())) or "none"
        text = f"{self.name}: read {self.read}, kept {self.kept}, truncated {self.truncated}"
        if self.eos_cut:
            text += f" ({self.eos_cut} with the final EOS cut)"
        if self.bad_rows:
            text += f", malformed rows skipped {self.bad_rows}"
        if self.control_text:
            text += f", {self.control_text} containing special-token text (encoded as plain text)"
        if self.straddling:
            text += f", {self.straddling} trained tokens straddling a reply edge"
        if self.stop_appended:
            text += f", {self.stop_appended} with a stop token appended to the final reply"
        return f"{text}; dropped: {drops}"

    def require_examples(self) -> None:
        """An empty result is an error naming what removed the rows, never a silent empty dataset."""
        if self.kept == 0:
            raise DataError(f"0 trainable examples after filtering: {self.summary()}")


@dataclass
class DataReport:
    stage: str
    template: str = ""  # the chat template that rendered the conversations (name, or auto)
    datasets: list[DatasetCounts] = field(default_factory=list)
    eval_datasets: list[DatasetCounts] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    train_rows: int = 0
    eval_rows: int = 0
    pt_tail_tokens: int = 0
    packed_from: int = 0
    cache: str = "off"
    streaming: bool = False
    bad_rows: list[dict[str, Any]] = field(default_factory=list)

    def histogram(self, bins: int = 8) -> list[tuple[int, int, int]]:
        """(low, high, count) buckets of encoded lengths before truncation."""
        if not self.lengths:
            return []
        low, top = min(self.lengths), max(self.lengths)
        width = max(1, -(-(top - low + 1) // bins))
        counts = Counter((n - low) // width for n in self.lengths)
        used = max(counts) + 1
        return [(low + b * width, low + (b + 1) * width - 1, counts.get(b, 0)) for b in range(used)]

    def lines(self) -> list[str]:
        rendered = f", template {self.template}" if self.template else ""
        out = [
            f"data ({self.stage}{rendered}, cache {self.cache}): {self.train_rows} train rows, "
            f"{self.eval_rows} eval rows"
        ]
        out += [f"  train {c.summary()}" for c in self.datasets]
        out += [f"  eval {c.summary()}" for c in self.eval_datasets]
        if self.packed_from:
            out.append(f"  packing: {self.packed_from} examples into {self.train_rows} rows")
        if self.pt_tail_tokens:
            kept = "kept" if self.pt_tail_tokens > 1 else "dropped: nothing to predict"
            out.append(f"  pt: the last block is a shorter tail of {self.pt_tail_tokens} tokens ({kept})")
        if self.streaming:
            out.append("  streaming: counts are not known ahead of training")
        hist = self.histogram()
        if hist:
            out.append("  length histogram (tokens before truncation):")
            top = max(n for _, _, n in hist) or 1
            out += [f"    {lo:>6}-{hi:<6} {n:>7} {'#' * round(30 * n / top)}" for lo, hi, n in hist]
        return out

    def length_warning(self, cutoff_len: int, too_long_reasons: tuple[str, ...]) -> str | None:
        """A warning when more than LENGTH_DROP_WARN of the examples were dropped for length, with the cutoff_len
        that would keep 95% of them (the 95th percentile of the lengths before truncation)."""
        read = sum(c.read for c in self.datasets)
        dropped = sum(n for c in self.datasets for reason, n in c.dropped.items() if reason in too_long_reasons)
        if not read or dropped / read <= LENGTH_DROP_WARN or not self.lengths:
            return None
        ordered = sorted(self.lengths)
        keeps_95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        return (
            f"{dropped} of {read} examples ({dropped / read:.0%}) are longer than data.cutoff_len {cutoff_len} and "
            f"were dropped; data.cutoff_len: {keeps_95} would keep 95% of them (or set data.truncation: truncate)"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataReport:
        raw = dict(raw)
        raw["datasets"] = [DatasetCounts(**c) for c in raw["datasets"]]
        raw["eval_datasets"] = [DatasetCounts(**c) for c in raw["eval_datasets"]]
        return cls(**raw)
