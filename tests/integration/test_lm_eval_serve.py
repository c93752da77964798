"""lm-evaluation-harness against `lmforge serve`, with the exact commands of docs/serving.md ("Benchmark a served
model with lm-evaluation-harness"), must give the same per-item results as lm-eval's own `hf` backend on the same
tiny model: a multiple-choice task (loglikelihood: `echo` + `logprobs` on token-id prompts, batched) and a
generation task (`local-completions` with token ids; `local-chat-completions` against `hf --apply_chat_template`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("lm_eval")
pytestmark = pytest.mark.slow

TASKS = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval_tasks"
LM_EVAL = [sys.executable, "-m", "lm_eval"]
# The commands of docs/serving.md (token-id requests are lm-eval's default; 4 prompts per request, 4 in flight).
COMPLETIONS = (
    "--model local-completions --model_args model=tiny,base_url=http://127.0.0.1:{port}/v1/completions,"
    "tokenizer={model},tokenizer_backend=huggingface,num_concurrent=4,max_retries=1 --batch_size 4"
)
CHAT = (
    "--model local-chat-completions --model_args model=tiny,base_url=http://127.0.0.1:{port}/v1/chat/completions,"
    "num_concurrent=4,max_retries=1 --apply_chat_template"
)
HF = "--model hf --model_args pretrained={model},dtype=float32 --device cpu --batch_size 1"
ENV = {
    **os.environ,
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _tasks(folder: Path) -> Path:
    """The fixture tasks with their data paths made absolute (lm-eval reads `data_files` relative to the cwd)."""
    shutil.copytree(TASKS, folder)
    for yaml in folder.glob("*.yaml"):
        yaml.write_text(yaml.read_text().replace("DATA_DIR", str(folder)))
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(model: Path, port: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "lmforge", "serve", "--model", str(model), "--model-name", "tiny"]
    argv += ["--port", str(port), "--dtype", "float32", "--log-level", "warning"]
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"lmforge serve exited: {proc.stderr.read() if proc.stderr else ''}")
    proc.terminate()
    raise RuntimeError("lmforge serve did not become healthy")


def _lm_eval(args: list[str], tasks: Path, out: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Run lm_eval; per task, the logged samples by doc_id."""
    argv = [*LM_EVAL, *args, "--include_path", str(tasks), "--output_path", str(out), "--log_samples"]
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    samples: dict[str, dict[int, dict[str, Any]]] = {}
    for path in out.rglob("samples_*.jsonl"):
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
        samples[task] = {s["doc_id"]: s for s in map(json.loads, path.read_text().splitlines())}
    return samples


def _same_choice_results(ours: dict[int, dict], hf: dict[int, dict]) -> None:
    assert ours.keys() == hf.keys() and ours
    for doc_id, sample in hf.items():
        mine = ours[doc_id]
        assert mine["acc"] == sample["acc"], doc_id
        for (ll_a, greedy_a), (ll_b, greedy_b) in zip(mine["filtered_resps"], sample["filtered_resps"], strict=True):
            assert float(ll_a) == pytest.approx(float(ll_b), abs=1e-4) and greedy_a == greedy_b, doc_id


def _same_generations(ours: dict[int, dict], hf: dict[int, dict]) -> None:
    assert ours.keys() == hf.keys() and ours
    assert all(sample["filtered_resps"][0] for sample in hf.values())  # real text on both sides, not empty vs empty
    for doc_id, sample in hf.items():
        assert ours[doc_id]["filtered_resps"] == sample["filtered_resps"], doc_id
        assert ours[doc_id]["exact_match"] == sample["exact_match"], doc_id


def test_lm_eval_through_lmforge_serve_matches_its_hf_backend(tiny_model_dir: Path, tmp_path: Path) -> None:
    tasks = _tasks(tmp_path / "tasks")
    model, port = str(tiny_model_dir), _free_port()
    hf = _lm_eval([*HF.format(model=model).split(), "--tasks", "tiny_choice,tiny_generate"], tasks, tmp_path / "hf")
    hf_chat = _lm_eval(
        [*HF.format(model=model).split(), "--tasks", "tiny_generate", "--apply_chat_template"], tasks, tmp_path / "hfc"
    )
    server = _serve(tiny_model_dir, port)
    try:
        completions = _lm_eval(
            [*COMPLETIONS.format(port=port, model=model).split(), "--tasks", "tiny_choice,tiny_generate"],
            tasks,
            tmp_path / "completions",
        )
        chat = _lm_eval([*CHAT.format(port=port).split(), "--tasks", "tiny_generate"], tasks, tmp_path / "chat")
    finally:
        server.terminate()
        server.wait(30)
    _same_choice_results(completions["tiny_choice"], hf["tiny_choice"])
    _same_generations(completions["tiny_generate"], hf["tiny_generate"])
    _same_generations(chat["tiny_generate"], hf_chat["tiny_generate"])
