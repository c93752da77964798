"""generate: prompts from encode_prompt, predictions independent of the batch size, predictions.jsonl written."""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.config.schema import DatasetSpec
from lmforge.data.report import DatasetCounts
from lmforge.evaluation import generation
from lmforge.evaluation.data import EvalSource
from lmforge.inference.engine import ChatEngine, GenerationOptions

GREEDY = GenerationOptions(max_new_tokens=6, temperature=0)


def _source() -> EvalSource:
    convs = [
        {
            "messages": [
                {"role": "user", "content": "Hi" + " there" * k},
                {"role": "assistant", "content": f"Reply {k}"},
            ]
        }
        for k in range(7)
    ]
    convs.append({"messages": [{"role": "user", "content": "no reply"}, {"role": "user", "content": "still none"}]})
    convs.append({"messages": [{"role": "user", "content": "long " * 80}, {"role": "assistant", "content": "x"}]})
    return EvalSource(DatasetSpec(name="t", path="t"), convs, DatasetCounts("t", read=9))


def test_examples_use_the_template_prompt_and_count_skips(engine: ChatEngine) -> None:
    source = _source()
    examples = generation.build_examples(source, engine, cutoff_len=64)
    assert len(examples) == 7 and source.counts.kept == 7
    assert source.counts.dropped == {generation.SKIP_NO_REPLY: 1, generation.SKIP_LONG_PROMPT: 1}
    first = source.rows[0]["messages"]
    assert examples[0].prompt_ids == engine.prompt_ids(first[:-1]) and examples[0].label == "Reply 0"


def test_predictions_do_not_depend_on_the_batch_size(engine: ChatEngine) -> None:
    """C16 through the eval path: length-sorted, left-padded batches of 3 equal one prompt at a time."""
    examples = generation.build_examples(_source(), engine, cutoff_len=64)
    one = generation.predict(engine, examples, GREEDY, 1)
    three = generation.predict(engine, examples, GREEDY, 3)
    assert one == three and any(one)


def test_predictions_file_holds_prompt_label_prediction(tmp_path: Path, engine: ChatEngine) -> None:
    examples = generation.build_examples(_source(), engine, cutoff_len=64)[:2]
    generation.write_predictions(tmp_path / "p.jsonl", engine, examples, ["a", "b"])
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [sorted(line) for line in lines] == [["label", "prediction", "prompt"]] * 2
    assert lines[0]["prompt"].endswith("<|im_start|>assistant\n") and "Hi" in lines[0]["prompt"]
    assert (lines[1]["label"], lines[1]["prediction"]) == ("Reply 1", "b")
