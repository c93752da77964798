"""`lmforge eval`: help, full tiny runs of every task from the command line, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.cli import main
from tests.unit.evaluation.conftest import ROOT, SAMPLES


def test_eval_help_lists_tasks_and_config_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for needle in (
        "perplexity",
        "generate",
        "choice",
        "--adapter",
        "benchmark_dir = ''",
        "n_shot = 5",
        "stage = 'sft'",
    ):
        assert needle in text


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_full_tiny_runs_of_every_task(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["batch_size=4", "--model", str(tiny_model_dir)]  # argparse: positionals in one run, flags around them
    qa = f"data.datasets=[{{path: {SAMPLES / 'qa_demo.json'}, format: alpaca}}]"

    code, out, _ = _run(
        [
            "eval",
            str(ROOT / "configs/eval/mmlu.yaml"),
            "model.adapter=null",
            "model.template=auto",
            f"output_dir={tmp_path / 'mmlu'}",
            f"choice.benchmark_dir={SAMPLES / 'mmlu'}",
            f"choice.categories={SAMPLES / 'mmlu' / 'categories.json'}",
            *common,
        ],
        capsys,
    )
    results = json.loads((tmp_path / "mmlu" / "eval_results.json").read_text(encoding="utf-8"))
    assert (
        code == 0 and results["metrics"]["total"] == 12 and set(results["categories"]) == {"STEM", "social sciences"}
    )
    assert "subject world_geography" in out and "overall" in out

    code, out, _ = _run(["eval", "--task", "perplexity", "--output-dir", str(tmp_path / "ppl"), qa, *common], capsys)
    results = json.loads((tmp_path / "ppl" / "eval_results.json").read_text(encoding="utf-8"))
    assert code == 0 and results["metrics"]["tokens"] > 0 and results["datasets"]["qa_demo.json"]["used"] == 8
    assert "perplexity" in out

    code, out, _ = _run(
        ["eval", "--output-dir", str(tmp_path / "gen"), "task=generate", "generate.max_new_tokens=4", qa, *common],
        capsys,
    )
    predictions = (tmp_path / "gen" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert code == 0 and len(predictions) == 8 and "rouge-l" in out


def test_bad_benchmark_file_is_one_error_line_without_traceback(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = tmp_path / "bench"
    (bench / "data" / "test").mkdir(parents=True)
    (bench / "data" / "test" / "x_test.csv").write_text("Q,a,b,c,d,A\nQ2,a,b,c,d,F\n", encoding="utf-8")
    code, _, err = _run(
        [
            "eval",
            "--task",
            "choice",
            "--model",
            str(tiny_model_dir),
            "--output-dir",
            str(tmp_path / "o"),
            f"choice.benchmark_dir={bench}",
            "choice.n_shot=0",
        ],
        capsys,
    )
    assert code == 2 and "Traceback" not in err
    assert err.strip().endswith("x_test.csv: line 2, column 6 (answer): 'F' is not one of A, B, C, D")


def test_unknown_key_fails_before_loading_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["eval", "--model", "nowhere", "--output-dir", str(tmp_path), "batch_sise=2"], capsys)
    assert code == 2 and "unknown config key 'batch_sise' (did you mean \"batch_size\"?)" in err
