"""The UI's forms come from the CLI's own schema and flags, its commands are exactly the CLI's, and its security
rules are `lmforge serve`'s (loopback by default, credentials elsewhere, no cross-site or rebinding requests)."""

from __future__ import annotations

import base64
import contextlib
import io
import json

import pytest
import yaml
from fastapi.testclient import TestClient

from lmforge.cli import build_parser, main
from lmforge.config import load_config
from lmforge.ui import specs
from lmforge.ui.app import create_app
from lmforge.ui.jobs import JobRunner
from lmforge.ui.ui_command import check_ui_bind, read_credentials
from lmforge.utils.errors import ConfigError


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return "".join(out.getvalue().split())  # compared without whitespace: --help wraps (and splits at hyphens)


def test_every_schema_field_of_the_train_form_carries_the_help_text_of_lmforge_train_help():
    shown = _help("train")
    checked = 0
    for section in specs.train_spec()["sections"]:
        if section["name"] == "train":
            continue  # TrainingArguments: transformers' own help
        for field in section["fields"]:
            assert "".join(field["help"].split()) in shown, (section["name"], field["key"])
            checked += 1
    assert checked > 80


def test_export_form_is_the_export_flags_and_its_command_is_what_the_cli_parses(tmp_path):
    keys = {f["key"] for f in specs.export_spec()["sections"][0]["fields"]}
    assert {"--model", "--adapter", "--output", "--format", "--gguf-type", "--overwrite"} <= keys
    planned = specs.plan_export({"": {"--model": "base", "--output": str(tmp_path / "m"), "--format": "gguf"}})
    args = build_parser().parse_args(planned.args)
    assert (args.format, args.output, args.gguf_type) == ("gguf", str(tmp_path / "m"), "f16")


def test_train_yaml_leaves_defaults_out_resolves_paths_and_loads_as_the_cli_loads_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    runner = JobRunner(tmp_path / "jobs")
    values = {
        "": {"stage": "sft"},
        "model": {"name_or_path": "model", "dtype": "float32", "gradient_checkpointing": False},
        "data": {"datasets": "[{path: d.json, format: alpaca}]", "cutoff_len": "1024", "packing": True},
        "method": {"name": "lora", "lora_rank": "4"},
        "train": {"output_dir": "runs/x", "max_steps": "5"},
        "train_extra": "{optim: adamw_torch}",
    }
    planned = specs.plan_train(values, runner)
    raw = yaml.safe_load(planned.config_yaml)
    assert raw == {
        "stage": "sft",
        "model": {"name_or_path": str(tmp_path / "model"), "dtype": "float32"},
        "data": {"datasets": [{"path": str(tmp_path / "d.json"), "format": "alpaca"}], "packing": True},
        "method": {"lora_rank": 4},
        "train": {"output_dir": str(tmp_path / "runs/x"), "max_steps": 5, "optim": "adamw_torch"},
    }
    assert planned.preview()["command"] == f"lmforge train {runner.folder_for('train', 'runs/x')}/config.yaml"
    config = tmp_path / "c.yaml"
    config.write_text(planned.config_yaml)
    assert load_config(config).method.lora_rank == 4
    assert {p["key"]: p["exists"] for p in planned.paths}["model.name_or_path"] is True


def test_a_bad_form_value_is_an_error_naming_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.cutoff_len: expected int"):
        specs.plan_train({"data": {"cutoff_len": "many"}, "train": {"output_dir": "x"}}, JobRunner(tmp_path))


@pytest.fixture
def client(tmp_path):
    return TestClient(create_app(JobRunner(tmp_path / "jobs")), base_url="http://127.0.0.1:7860")


def test_errors_reach_the_page_as_messages_not_tracebacks(client):
    response = client.post("/api/eval/start", json={})
    assert response.status_code == 400
    assert response.json() == {"error": "output_dir: required (the folder eval_results.json goes to)"}
    missing = client.post("/api/jobs/nope/abort")
    assert missing.status_code == 400 and "no job 'nope'" in missing.json()["error"]


def test_requests_for_another_host_or_from_another_site_are_refused(client):
    assert client.get("/api/jobs").status_code == 200
    assert client.get("/api/jobs", headers={"host": "evil.example:7860"}).status_code == 403  # DNS rebinding
    cross = client.post("/api/eval/start", json={}, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"] == "cross-site request refused"


def test_credentials_are_required_when_configured(tmp_path):
    app = create_app(JobRunner(tmp_path / "jobs"), credentials="ann:secret", allowed_hosts=("10.0.0.5",))
    client = TestClient(app, base_url="http://10.0.0.5:7860")
    assert client.get("/api/jobs").status_code == 401
    good = base64.b64encode(b"ann:secret").decode()
    assert client.get("/api/jobs", headers={"authorization": f"Basic {good}"}).json() == []


def test_non_loopback_bind_needs_credentials_like_serve(tmp_path, capsys):
    check_ui_bind("127.0.0.1", None)
    check_ui_bind("0.0.0.0", "ann:secret")
    with pytest.raises(ConfigError, match="without authentication"):
        check_ui_bind("0.0.0.0", None)
    assert main(["ui", "--host", "0.0.0.0", "--jobs-dir", str(tmp_path)]) == 2
    assert "lmforge: error: refusing to serve the UI on 0.0.0.0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="USER:PASSWORD"):
        read_credentials("nopassword", None)


def test_jobs_of_other_kinds_and_failed_starts_are_listed_with_their_state(tmp_path):
    runner = JobRunner(tmp_path / "jobs")
    job = runner.start("train", ["train", str(tmp_path / "missing.yaml")], str(tmp_path / "out"))
    deadline = 60
    import time

    start = time.monotonic()
    while runner.get(job.id).status().running and time.monotonic() - start < deadline:
        time.sleep(0.1)
    summary = runner.get(job.id).summary()
    assert summary["state"] == "failed" and summary["resumable"]
    assert summary["message"] == "exit status 2; see the log"  # the detail after the badge, not the state again
    assert "missing.yaml" in job.log_path.read_text()
    assert json.loads((job.folder / "exit-1.json").read_text())["returncode"] == 2


def test_catalogue_listing_is_lmforge_data_list_of_a_llamafactory_dataset_info(client):
    from lmforge.data.catalog import load_catalog
    from tests.integration.runs import REPO

    info = REPO / "examples/data/dataset_info.json"
    listed = client.post("/api/data/catalog", json={"catalog": str(info)}).json()
    assert listed["listing"] == load_catalog(info).listing() and "alpaca_en_demo" in listed["names"]
    missing = client.post("/api/data/catalog", json={"catalog": "nope/x.yaml"}).json()["error"]
    assert missing.startswith("data.catalog ") and missing.endswith("nope/x.yaml: no such file")
