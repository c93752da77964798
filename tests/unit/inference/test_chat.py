"""`lmforge chat`: one answer per prompt (flags or piped stdin), interactive history with /clear and /exit."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge.cli import main
from lmforge.inference.chat import ChatSession, interactive_chat
from lmforge.inference.engine import GenerationOptions, load_engine

GREEDY_ARGS = ["--temperature", "0", "--max-new-tokens", "6", "--dtype", "float32"]
GREEDY = GenerationOptions(temperature=0, max_new_tokens=6)


class RecordingEngine:
    """Streams a reply naming the turn number and records every conversation it was sent."""

    def __init__(self) -> None:
        self.seen: list[list[dict]] = []

    def stream(self, messages: list[dict], options: GenerationOptions) -> Iterator[str]:
        self.seen.append(messages)
        yield from ("reply ", str(len(self.seen)))


def test_interactive_session_keeps_history_and_clear_keeps_system() -> None:
    engine = RecordingEngine()
    session = ChatSession(engine, GREEDY, system="be brief")
    stdin = io.StringIO("first\nsecond\n/clear\nthird\n/exit\nnever\n")
    out = io.StringIO()
    interactive_chat(session, stdin, out)
    second, third = engine.seen[1], engine.seen[2]
    assert [m["content"] for m in second] == ["be brief", "first", "reply 1", "second"]
    assert [m["content"] for m in third] == ["be brief", "third"]
    assert len(engine.seen) == 3  # nothing after /exit
    assert "(conversation cleared)" in out.getvalue() and "reply 3" in out.getvalue()


def test_prompt_flags_print_one_answer_per_prompt(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = ["Hello there.", "What is a cat?"]
    argv = ["chat", "--model", str(tiny_model_dir), *GREEDY_ARGS, "--system", "Be kind."]
    assert main([*argv, "--prompt", prompts[0], "--prompt", prompts[1]]) == 0
    engine = load_engine(str(tiny_model_dir), dtype="float32")
    system = {"role": "system", "content": "Be kind."}
    expected = [engine.generate([system, {"role": "user", "content": p}], GREEDY) for p in prompts]
    assert capsys.readouterr().out == "".join(f"{r}\n" for r in expected)


def _run_chat(tiny_model_dir: Path, stdin: str, *extra: str) -> str:
    argv = [sys.executable, "-m", "lmforge", "chat", "--model", str(tiny_model_dir), *GREEDY_ARGS, *extra]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_piped_stdin_answers_each_line(tiny_model_dir: Path) -> None:
    out = _run_chat(tiny_model_dir, "Hello there.\n\nWhat is a cat?\n")
    engine = load_engine(str(tiny_model_dir), dtype="float32")
    expected = [engine.generate([{"role": "user", "content": p}], GREEDY) for p in ("Hello there.", "What is a cat?")]
    assert out == "".join(f"{r}\n" for r in expected)


def test_interactive_clear_and_exit_through_stdin(tiny_model_dir: Path) -> None:
    out = _run_chat(tiny_model_dir, "Hello there.\n/clear\nHello there.\n/exit\nnever answered\n", "--interactive")
    replies = [line for line in out.splitlines() if "assistant> " in line]
    assert len(replies) == 2 and replies[0] == replies[1]  # cleared history: same prompt, same greedy reply
    assert "(conversation cleared)" in out
    assert len(replies[0].split("assistant> ", 1)[1]) > 0


def test_bad_sampling_option_names_the_option(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--model", str(tiny_model_dir), "--top-p", "0", "--prompt", "x"]) == 2
    assert "top_p must be in (0, 1], got 0.0" in capsys.readouterr().err
