"""`lmforge generate` against a real `lmforge serve` app (uvicorn on a free port) and in-process, with a
tiny generator trained here to answer the pipeline's prompts. No mocked client: the only stand-in is a small HTTP
proxy in front of the real server that answers 429 first, or drops connections mid-run, for the fault tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from lmforge.cli import main
from lmforge.train import run_training
from tests.integration.generate_model import (
    IN_CONTEXT,
    QA_TEXT,
    QUESTIONS_PER_CHUNK,
    SEEDS,
    generator_rows,
    train_generator,
)
from tests.integration.runs import REPO, load, write_config

pytestmark = pytest.mark.slow

KEY_ENV = "LMFORGE_TEST_GENERATOR_KEY"


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory, tiny_model_dir) -> Path:
    from lmforge.models.adapters import load_plain_tokenizer

    rows = generator_rows(load_plain_tokenizer(str(tiny_model_dir)))
    return train_generator(tmp_path_factory.mktemp("generator"), tiny_model_dir, rows)


@pytest.fixture(scope="module")
def served(generator_dir) -> Iterator[str]:
    from lmforge.inference.engine import load_engine
    from lmforge.inference.server import create_app
    from tests.fixtures.server import running_server

    engine = load_engine(str(generator_dir), template="chatml", dtype="float32")
    with running_server(create_app(engine, api_key="gen-key", model_name="gen")) as url:
        yield url


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "gen-key")


SELF_INSTRUCT = {
    "seed_tasks": str(SEEDS),
    "num_instructions": 10,
    "max_rounds": 2,
    "prompts_per_round": 3,
    "num_prompt_instructions": IN_CONTEXT,
    "num_machine_instructions": 1,
}


def write_run(folder: Path, method: tuple[str, dict] = ("self_instruct", SELF_INSTRUCT), **generator) -> Path:
    """A greedy run config; by default Self-Instruct with 3 in-context instructions and 2 rounds of 3 proposals."""
    raw = {
        "generator": {"api_key_env": KEY_ENV, "concurrency": 4, "max_retries": 2, "backoff_s": 0.05, **generator},
        "sampling": {"temperature": 0, "max_new_tokens": 96},
        "answer_sampling": {"max_new_tokens": 96},
        "output": {"dir": str(folder / "out")},
        method[0]: method[1],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gen.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return folder / "gen.yaml"


def over_http(url: str) -> dict[str, str]:
    return {"base_url": url, "model": "gen"}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def outputs(out: Path, name: str = "self_instruct") -> dict[str, list[dict]]:
    """The run's data files, provenance without the generator's name (the served name vs the folder name)."""
    files = {f: lines(out / f) for f in (f"{name}.jsonl", f"{name}.provenance.jsonl", "rejects.jsonl")}
    files[f"{name}.provenance.jsonl"] = [
        {k: v for k, v in row.items() if k != "generator"} for row in files[f"{name}.provenance.jsonl"]
    ]
    return files


def assert_report_matches_disk(out: Path, name: str = "self_instruct") -> dict:
    report = json.loads((out / "report.json").read_text())
    records, provenance = lines(out / f"{name}.jsonl"), lines(out / f"{name}.provenance.jsonl")
    assert report["records"] == len(records) == len(provenance)
    on_disk = Counter(row["reason"] for row in lines(out / "rejects.jsonl"))
    assert report["rejected"] == dict(on_disk) and report["rejected_total"] == sum(on_disk.values())
    return report


def generate(config: Path, *args: str, method: str = "self-instruct") -> int:
    return main(["generate", method, str(config), *args])


@pytest.fixture(scope="module")
def reference_run(served, tmp_path_factory) -> Path:
    """An uninterrupted run over HTTP: what every other run must reproduce."""
    os.environ[KEY_ENV] = "gen-key"
    config = write_run(tmp_path_factory.mktemp("reference"), **over_http(served))
    assert generate(config) == 0
    return config.parent / "out"


def test_records_parse_and_report_counts_equal_files(reference_run):
    report = assert_report_matches_disk(reference_run)
    records = lines(reference_run / "self_instruct.jsonl")
    assert {r["instruction"] for r in records} >= {
        "Name three fruits that are red.",
        "Classify the animal as a mammal or a bird.",
        "Translate the greeting into French.",
    }
    assert {"instruction": "Classify the animal as a mammal or a bird.", "input": "eagle", "output": "Bird"} in records
    assert report["rejected"]["near_duplicate"] >= 3  # round 2 proposes the same tasks again
    prov = lines(reference_run / "self_instruct.provenance.jsonl")
    classify = [p for p in prov if p["source"]["is_classification"]]
    assert classify and all("self-instruct/output-first-v1" in p["prompt_ids"] for p in classify)
    assert all(p["generator"] == "gen" and len(p["source"]["in_context"]) == IN_CONTEXT for p in prov)


def test_in_process_engine_writes_the_same_records_as_the_endpoint(reference_run, generator_dir, tmp_path, served):
    config = write_run(tmp_path / "local", model=str(generator_dir), template="chatml", dtype="float32")
    assert generate(config, "generator.api_key_env=null") == 0
    assert outputs(tmp_path / "local/out") == outputs(reference_run)
    # negative control: sampled proposals (another seed) change what the model says
    control = write_run(tmp_path / "sampled", **over_http(served))
    assert generate(control, "sampling.temperature=1.0", "seed=3") == 0
    replies = lines(tmp_path / "sampled/out/replies.jsonl")
    assert replies != lines(reference_run / "replies.jsonl")


def test_generated_records_train_and_preview(reference_run, tiny_model_dir, tmp_path):
    data = {"datasets": ["self_instruct"], "catalog": str(reference_run / "datasets.yaml"), "cutoff_len": 256}
    config = write_config(tmp_path, tiny_model_dir, SEEDS, data=data, train={"max_steps": 2})  # by catalogue name
    assert main(["data", "preview", str(config), "--n", "1"]) == 0
    run_training(load(config), resume=False)
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_killed_run_resumes_to_exactly_the_uninterrupted_records(reference_run, served, tmp_path):
    config = write_run(tmp_path, **over_http(served), concurrency=1)
    journal = tmp_path / "out" / "replies.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmforge", "generate", "self-instruct", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (journal.is_file() and len(journal.read_text().splitlines()) >= 4):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert len(journal.read_text().splitlines()) < len(lines(reference_run / "replies.jsonl"))
    assert generate(config) == 2  # an existing run is never silently overwritten
    assert generate(config, "--resume") == 0
    assert outputs(tmp_path / "out") == outputs(reference_run)
    assert_report_matches_disk(tmp_path / "out")


def test_budget_stops_cleanly_and_resume_with_a_larger_one_finishes_the_run(reference_run, served, tmp_path):
    config = write_run(tmp_path, **over_http(served))
    assert generate(config, "--max-requests", "4") == 0
    report = assert_report_matches_disk(tmp_path / "out")
    assert report["stopped"] == "max_requests budget (4) used" and report["requests"]["sent"] == 4
    assert generate(config, "--resume") == 0
    report = assert_report_matches_disk(tmp_path / "out")
    assert report["requests"]["replayed"] == 4 and report["stopped"] == "max_rounds (2) reached"
    assert outputs(tmp_path / "out") == outputs(reference_run)


@contextmanager
def proxy(upstream: str, fail: callable) -> Iterator[str]:
    """An HTTP proxy to `upstream`: `fail(n)` for the n-th chat request says what to do instead of forwarding:
    None (forward), an int status (answer it with Retry-After: 0) or "drop" (close the connection, no reply)."""
    seen = Counter()
    lock = threading.Lock()
    client = httpx.Client(timeout=60)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/chat/completions"):
                with lock:
                    seen["chat"] += 1
                    action = fail(seen["chat"])
                if action == "drop":
                    self.close_connection = True
                    return
                if action is not None:
                    self.send_response(action)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
            headers = {"Authorization": self.headers.get("Authorization", ""), "Content-Type": "application/json"}
            reply = client.request(method, upstream.rsplit("/v1", 1)[0] + self.path, content=body, headers=headers)
            self.send_response(reply.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        client.close()


def test_429_then_200_is_retried_with_the_same_records(reference_run, served, tmp_path):
    with proxy(served, lambda n: 429 if n <= 2 else None) as url:  # max_retries 2: the 3rd try passes
        config = write_run(tmp_path, **over_http(url), concurrency=1)
        assert generate(config) == 0
    report = assert_report_matches_disk(tmp_path / "out")
    assert report["retries"] == 2
    assert outputs(tmp_path / "out") == outputs(reference_run)


def test_endpoint_dying_mid_run_fails_cleanly_and_keeps_what_it_made(reference_run, served, tmp_path, capsys):
    with proxy(served, lambda n: "drop" if n > 5 else None) as url:
        config = write_run(tmp_path, **over_http(url), concurrency=1)
        assert generate(config) == 2
    err = capsys.readouterr().err
    assert "lmforge: error:" in err and "failed request" in err and "--resume" in err and "Traceback" not in err
    report = assert_report_matches_disk(tmp_path / "out")
    assert report["stopped"].startswith("generator failed")
    assert len(lines(tmp_path / "out/replies.jsonl")) == 5
    assert generate(config, "--resume", f"generator.base_url={served}") == 0
    assert outputs(tmp_path / "out") == outputs(reference_run)


def test_endpoint_problems_are_reported_before_any_work(served, tmp_path, monkeypatch, capsys):
    config = write_run(tmp_path, base_url="http://127.0.0.1:9/v1", model="gen")
    assert generate(config) == 2
    assert "http://127.0.0.1:9/v1 is unreachable: ConnectError" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert generate(config, f"generator.base_url={served}", "generator.model=nope") == 2
    assert "'nope' is not served by" in (err := capsys.readouterr().err) and "it serves: gen" in err
    monkeypatch.setenv(KEY_ENV, "wrong")
    assert generate(config, f"generator.base_url={served}") == 2
    assert "answered 401: the API key is wrong" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_self_qa_keeps_grounded_standalone_questions_with_their_chunk(served, generator_dir, tmp_path):
    doc = tmp_path / "curie.txt"
    doc.write_text(QA_TEXT, encoding="utf-8")
    section = {"documents": str(doc), "tokenizer": str(generator_dir), "chunk_tokens": 256, "chunk_overlap": 16}
    section["questions_per_chunk"] = QUESTIONS_PER_CHUNK
    config = write_run(tmp_path / "http", ("self_qa", section), **over_http(served))
    assert generate(config, "sampling.max_new_tokens=160", method="self-qa") == 0
    out = tmp_path / "http/out"
    report = assert_report_matches_disk(out, "self_qa")
    assert lines(out / "self_qa.jsonl") == [
        {
            "instruction": "Where was Marie Curie born?",
            "input": "",
            "output": "Marie Curie was born in Warsaw, in 1867.",
        }
    ]
    assert report["rejected"] == {"duplicate_question": 1, "not_a_question": 1, "question_refers_to_source": 1}
    (prov,) = lines(out / "self_qa.provenance.jsonl")
    assert prov["source"]["chunk"] == "curie.txt#0000" and prov["prompt_ids"] == [
        "self-qa/questions-v1",
        "self-qa/answer-v1",
    ]
    local = write_run(
        tmp_path / "local", ("self_qa", section), model=str(generator_dir), template="chatml", dtype="float32"
    )
    assert generate(local, "generator.api_key_env=null", "sampling.max_new_tokens=160", method="self-qa") == 0
    assert outputs(tmp_path / "local/out", "self_qa") == outputs(out, "self_qa")


def test_self_kg_model_answers_are_kept_only_when_the_triples_support_them(served, tmp_path):
    """The tiny generator was never taught these facts: its answers miss them and are all rejected and counted,
    while the template questions alone (no model) all become records."""
    triples = REPO / "tests/fixtures/generate/umls_one_per_relation.tsv"
    section = {"triples": str(triples), "max_questions": 6, "model_answers": True}
    config = write_run(tmp_path / "model", ("self_kg", section), **over_http(served))
    assert generate(config, method="self-kg") == 0
    report = assert_report_matches_disk(tmp_path / "model/out", "self_kg")
    assert report["records"] + report["rejected"].get("unsupported_answer", 0) == 6
    assert report["rejected"].get("unsupported_answer", 0) >= 1
    templates = write_run(tmp_path / "templates", ("self_kg", {"triples": str(triples), "max_questions": 6}))
    assert generate(templates, method="self-kg") == 0
    report = assert_report_matches_disk(tmp_path / "templates/out", "self_kg")
    assert report["records"] == 6 and report["requests"]["sent"] == 0
