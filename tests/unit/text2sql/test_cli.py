"""`lmforge text2sql`: prepare -> LoRA SFT of a tiny model on the singer examples -> predict -> eval, end to end;
eval's bad-input messages name the file and line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch
import yaml

from lmforge.cli import main
from tests.fixtures.run_configs import QUIET_TRAIN
from tests.unit.text2sql.conftest import FIXTURES, SHOP_TABLES, TABLES, build_shop, write_tables


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["text2sql", "--help"])
    text = capsys.readouterr().out
    assert all(word in text for word in ("prepare", "predict", "eval"))


def test_prepare_train_predict_eval_end_to_end(
    tmp_path: Path, tiny_model_dir: Path, dev_examples: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    questions = tmp_path / "singer.json"
    questions.write_text(json.dumps([e for e in dev_examples if e["db_id"] == "singer"]), encoding="utf-8")
    (tmp_path / "db" / "singer").mkdir(parents=True)
    (tmp_path / "db" / "singer" / "singer.sqlite").write_bytes((FIXTURES / "singer.sqlite").read_bytes())
    data = tmp_path / "data"
    common = ["--tables", str(TABLES), "--db-dir", str(tmp_path / "db")]
    code, out, _ = _run(
        [
            "text2sql",
            "prepare",
            "--spider",
            str(questions),
            *common,
            "--output",
            str(data),
            "--sample-rows",
            "1",
            "--tokenizer",
            str(tiny_model_dir),
            "--template",
            "chatml",
            "--cutoff-len",
            "1024",
        ],
        capsys,
    )
    assert code == 0 and "text2sql_train: 30 of 30 examples" in out

    config = yaml.safe_load((Path(__file__).resolve().parents[3] / "configs/text2sql/lora.yaml").read_text())
    config["model"] = {"name_or_path": str(tiny_model_dir), "dtype": "float32"}
    config["data"] |= {"catalog": str(data / "datasets.yaml"), "cutoff_len": 1024, "cache_dir": str(tmp_path / "c")}
    del config["data"]["eval_datasets"]
    config["method"] |= {"lora_rank": 4, "lora_alpha": 8}
    config["train"] = {**QUIET_TRAIN, "output_dir": str(tmp_path / "run"), "max_steps": 2, "eval_strategy": "no"}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "run.yaml")]) == 0
    capsys.readouterr()

    code, out, _ = _run(
        [
            "text2sql",
            "predict",
            "--model",
            str(tiny_model_dir),
            "--adapter",
            str(tmp_path / "run"),
            "--template",
            "chatml",
            "--questions",
            str(questions),
            *common,
            "--prompt-settings",
            str(data / "text2sql_prompt.json"),
            "--output",
            str(tmp_path / "pred"),
            "--max-new-tokens",
            "8",
            "--batch-size",
            "16",
        ],
        capsys,
    )
    assert code == 0 and "30 predictions" in out
    records = [json.loads(line) for line in (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 30 and all(r["db_id"] == "singer" for r in records)
    assert len((tmp_path / "pred" / "predictions.sql").read_text().splitlines()) == 30

    report_path = tmp_path / "report.json"
    code, out, _ = _run(
        [
            "text2sql",
            "eval",
            "--pred",
            str(tmp_path / "pred" / "predictions.jsonl"),
            "--gold",
            str(questions),
            *common,
            "--output",
            str(report_path),
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0 and "valid SQL" in out and "EX on 1 database files" in out
    settings = json.loads((tmp_path / "pred" / "predict_settings.json").read_text())
    assert settings["generation"]["temperature"] == 0.0 and settings["prompt"]["sample_rows"] == 1
    report = json.loads(report_path.read_text())
    assert report["metrics"]["count"] == 30 and report["metrics"]["ex"] is not None
    assert sum(report["outcomes"].values()) == 30

    # the same pipeline scores gold as a prediction perfectly (Spider's one-query-per-line format)
    gold_lines = tmp_path / "gold_pred.sql"
    gold_lines.write_text("".join(e["query"] + "\n" for e in json.loads(questions.read_text())))
    code, out, _ = _run(["text2sql", "eval", "--pred", str(gold_lines), "--gold", str(questions), *common], capsys)
    assert code == 0 and out.splitlines()[2].split() == ["all", "30", "100.0", "100.0"]


@pytest.fixture
def shop(tmp_path: Path) -> dict[str, Path]:
    db_dir = build_shop(tmp_path / "db")
    tables = write_tables(tmp_path / "tables.json", SHOP_TABLES)
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT name FROM customer\tshop\nSELECT count(*) FROM orders\tshop\n")
    return {"db": db_dir, "tables": tables, "gold": gold, "dir": tmp_path}


def _eval(
    shop: dict[str, Path], pred_text: str, capsys: pytest.CaptureFixture[str], *extra: str, suffix: str = ".sql"
):
    pred = shop["dir"] / f"pred{suffix}"
    pred.write_text(pred_text)
    args = ["text2sql", "eval", "--pred", str(pred), "--gold", str(shop["gold"]), "--tables", str(shop["tables"])]
    return _run([*args, "--db-dir", str(shop["db"]), "--workers", "1", *extra], capsys)


def test_malformed_predictions_are_counted(shop: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _eval(shop, "SELECT FROM WHERE\nSELECT COUNT(*) FROM orders\n", capsys)
    assert code == 0
    assert "correct 1" in out and "unparsable 1" in out and "valid SQL: 50.0%" in out


def test_prediction_count_must_match(shop: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _eval(shop, "SELECT name FROM customer\n", capsys)
    assert code == 2 and "has 1 predictions but" in err and "gold.sql has 2 gold queries" in err


def test_wrong_database_guard(shop: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"db_id": "shop", "sql": "SELECT name FROM customer"}, {"db_id": "singer", "sql": "SELECT 1"}]
    code, _, err = _eval(shop, "".join(json.dumps(r) + "\n" for r in rows), capsys, suffix=".jsonl")
    assert code == 2 and "pred.jsonl:2: prediction is for database 'singer'" in err and "gold.sql:2" in err


def test_db_id_without_schema(shop: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    shop["gold"].write_text("SELECT 1\tshp\n")
    code, _, err = _eval(shop, "SELECT 1\n", capsys)
    assert code == 2 and "gold.sql:1: db_id 'shp' has no schema" in err


def test_missing_database_file(shop: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (shop["db"] / "shop" / "shop.sqlite").unlink()
    code, _, err = _eval(shop, "SELECT 1\nSELECT 1\n", capsys)
    assert code == 2 and "gold.sql:1: no SQLite file for db_id 'shop'" in err


def test_gold_that_does_not_run_is_reported_not_scored(
    shop: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    shop["gold"].write_text("SELECT nope FROM customer\tshop\nSELECT count(*) FROM orders\tshop\n")
    code, out, _ = _eval(shop, "SELECT name FROM customer\nSELECT count(*) FROM orders\n", capsys)
    assert code == 0 and "data errors (not scored): 2" in out  # no such column: for EM (grammar) and for EX (run)
    assert "correct 1" in out and "wrong_result 0" in out


def test_gold_file_format_error_names_the_line(shop: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    shop["gold"].write_text("SELECT 1\tshop\nno tab here\n")
    code, _, err = _eval(shop, "SELECT 1\nSELECT 1\n", capsys)
    assert code == 2 and "gold.sql:2: expected 'SQL<TAB>db_id'" in err


def test_database_folder_of_another_split_is_refused(
    shop: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """DB-GPT-Hub's commonest evaluation mistake: a --db-dir whose files do not hold the schema's tables."""
    wrong = shop["db"] / "shop" / "shop.sqlite"
    wrong.unlink()
    connection = sqlite3.connect(wrong)
    connection.execute("CREATE TABLE customer (id, name, city)")
    connection.close()
    code, _, err = _eval(shop, "SELECT 1\nSELECT 1\n", capsys)
    assert code == 2 and "has no table orders of db_id 'shop'" in err and "--db-dir" in err
