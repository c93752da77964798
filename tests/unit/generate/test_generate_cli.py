"""`lmforge generate` config handling and dry runs: no model is loaded, nothing is written."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from lmforge.cli import main
from lmforge.generate.generate_config import GeneratorConfig, SelfInstructConfig, load_generate_config

REPO = Path(__file__).resolve().parents[3]
SEEDS = REPO / "examples/data/generate/seed_tasks.jsonl"


def _config(tmp_path: Path, **sections) -> Path:
    raw = {
        "generator": {"model": str(tmp_path / "no-such-model")},
        "output": {"dir": str(tmp_path / "out")},
        "self_instruct": {"seed_tasks": str(SEEDS), "prompts_per_round": 2},
    }
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_help_documents_every_key(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "self-instruct", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for cls in (GeneratorConfig, SelfInstructConfig):
        for fld in dataclasses.fields(cls):
            assert f"  {fld.name} = " in text, fld.name
    assert "--resume" in text and "--dry-run" in text and "--max-requests" in text


def test_config_errors_are_one_line_with_did_you_mean(tmp_path: Path, capsys) -> None:
    assert main(["generate", "self-instruct", str(_config(tmp_path)), "generator.concurency=4"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'generator.concurency'" in err and 'did you mean "concurrency"' in err
    assert main(["generate", "self-qa", str(_config(tmp_path))]) == 2
    assert "self_qa.documents is required" in capsys.readouterr().err
    assert main(["generate", "self-instruct", str(_config(tmp_path)), "self_instruct.seed_tasks=missing.jsonl"]) == 2
    assert "file not found: missing.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sampling_keys_not_given_keep_the_schema_defaults(tmp_path: Path) -> None:
    cfg = load_generate_config("self-instruct", _config(tmp_path), ["sampling.temperature=1.0", "max_requests=5"])
    assert (cfg.sampling.temperature, cfg.sampling.top_p, cfg.max_requests) == (1.0, 0.5, 5)
    assert cfg.output.name == "self_instruct"


def test_dry_run_prints_the_prompts_and_writes_nothing(tmp_path: Path, capsys) -> None:
    assert main(["generate", "self-instruct", str(_config(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- request self-instruct/r0/p") == 2
    assert "prompt self-instruct/propose-v1" in out and "\n9.\n" in out  # 8 in-context tasks, 9 left open
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", sorted((REPO / "configs/generate").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_generate_configs_load_and_name_existing_inputs(path: Path) -> None:
    method = path.stem.replace("_", "-")
    cfg = load_generate_config(method, path)
    section = getattr(cfg, path.stem)
    inputs = [v for k, v in dataclasses.asdict(section).items() if k in ("seed_tasks", "documents", "triples") and v]
    assert inputs and all((REPO / p).exists() for p in inputs)


def test_self_kg_needs_no_model_and_every_template_question_becomes_a_record(tmp_path: Path, capsys) -> None:
    triples = REPO / "tests/fixtures/generate/umls_one_per_relation.tsv"
    config = _config(tmp_path, self_kg={"triples": str(triples), "multi_hop": True, "max_paths": 20})
    assert main(["generate", "self-kg", str(config), "generator.model="]) == 0
    out = tmp_path / "out"
    rows = (out / "self_kg.jsonl").read_text().splitlines()
    report = yaml.safe_load((out / "report.json").read_text())
    assert report["records"] == len(rows) > 20 and report["rejected_total"] == 0
    assert "data.datasets=[self_kg]" in capsys.readouterr().out
    assert yaml.safe_load((out / "datasets.yaml").read_text()) == {
        "self_kg": {"file_name": "self_kg.jsonl", "format": "alpaca"}
    }
