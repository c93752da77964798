"""What a run writes: records in each format read back by the training data readers through the catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.config.schema import DataConfig
from lmforge.data.catalog import resolve_specs
from lmforge.data.formats import iter_conversations
from lmforge.generate.output import OutputStore
from lmforge.utils.errors import LmforgeError


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "openai"])
def test_records_read_back_through_the_catalogue_as_the_same_conversation(tmp_path: Path, fmt: str) -> None:
    store = OutputStore(tmp_path, "gen", fmt, resume=False)
    store.record("Translate the greeting.", "Good morning.", "Bonjour.", {"method": "test"})
    store.close()
    data = DataConfig(catalog=str(tmp_path / "datasets.yaml"))
    (spec,) = resolve_specs(["gen"], data, "data.datasets")
    (row,) = iter_conversations(spec, data, "sft", None, [])
    user, assistant = row["messages"][-2:]
    assert "Translate the greeting." in user["content"] and "Good morning." in user["content"]
    assert assistant["role"] == "assistant" and assistant["content"] == "Bonjour."


def test_an_existing_run_needs_resume_and_a_torn_journal_line_is_dropped(tmp_path: Path) -> None:
    store = OutputStore(tmp_path, "gen", "alpaca", resume=False)
    store.journal("a", {"text": "x", "finish": "stop", "usage": [1, 1]})
    store.close()
    with (tmp_path / "replies.jsonl").open("a") as handle:
        handle.write('{"key": "b", "text": "cut of')  # a kill in the middle of a line
    with pytest.raises(LmforgeError, match="--resume"):
        OutputStore(tmp_path, "gen", "alpaca", resume=False)
    resumed = OutputStore(tmp_path, "gen", "alpaca", resume=True)
    assert list(resumed.replies) == ["a"]
    resumed.close()
    assert (tmp_path / "replies.jsonl").read_text().count("\n") == 1
