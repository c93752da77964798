"""Evaluation datasets: read through the training catalogue and formats, with every skipped row counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmforge.config.schema import DataConfig, DatasetSpec
from lmforge.data.catalog import resolve_specs
from lmforge.data.formats import iter_conversations
from lmforge.data.report import DatasetCounts
from lmforge.utils.errors import DataError


@dataclass
class EvalSource:
    """One dataset's converted rows (conversations for sft, {"text"} for pt) and what happened to the others."""

    spec: DatasetSpec
    rows: list[dict[str, Any]]
    counts: DatasetCounts
    bad_rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts for the results JSON: rows read, used, and skipped per reason (malformed rows included)."""
        skipped = dict(self.counts.dropped)
        if self.bad_rows:
            skipped["malformed row"] = len(self.bad_rows)
        return {"read": self.counts.read, "used": self.counts.kept, "skipped": skipped}


def read_sources(data: DataConfig, stage: str) -> list[EvalSource]:
    """Every dataset of `data.datasets`, converted for `stage` (sft conversations or pt text)."""
    sources = []
    for spec in resolve_specs(data.datasets, data, "data.datasets"):
        counts = DatasetCounts(spec.name)
        bad_rows: list[dict[str, Any]] = []
        rows = list(iter_conversations(spec, data, stage, counts, bad_rows))
        counts.bad_rows = len(bad_rows)
        if counts.read == 0:
            raise DataError(f"dataset {spec.name!r} ({spec.path}): no rows to read")
        sources.append(EvalSource(spec, rows, counts, bad_rows))
    return sources


def require_rows(source: EvalSource) -> None:
    """An evaluation over nothing is an error naming why every row was skipped."""
    if source.counts.kept == 0:
        raise DataError(f"nothing to evaluate: {source.counts.summary()}")
