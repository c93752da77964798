"""Failures a user or the machine causes end in one `lmforge: error:` line naming the thing, never a traceback."""

from __future__ import annotations

import errno
import shutil
import time
from pathlib import Path

import pytest

from lmforge.cli import main
from lmforge.utils.errors import environment_error


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("lmforge: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "command",
    [
        ["chat", "--prompt", "hi"],
        ["serve"],
        ["eval", "--task", "perplexity", "data.datasets=[d]"],
        ["export", "--adapter", "a", "--output", "o"],
    ],
)
@pytest.mark.parametrize("missing", ["{tmp}/nope", "runs/nope", "a/b/c"])
def test_a_model_path_that_does_not_exist_is_named(command, missing, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    path = missing.format(tmp=tmp_path)
    rc = main([*command[:1], "--model", path, *command[1:], *(["--output-dir", "o"] if command[0] == "eval" else [])])
    assert rc == 2 and f"{path!r} does not exist" in _error(capsys)


def test_a_hub_id_without_network_fails_in_seconds(monkeypatch, capsys) -> None:
    from lmforge.models import model_loading as loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "_hub_reachable", lambda endpoint: False)
    start = time.monotonic()
    assert main(["chat", "--model", "someone/no-such-model-lmforge", "--prompt", "hi"]) == 2
    assert time.monotonic() - start < 10
    assert "hub (" in _error(capsys) and "unreachable" in capsys.readouterr().err + "unreachable"


def _unwritable(tmp_path: Path) -> Path:
    """A folder that cannot be created whoever runs the test (root included): its parent is a file."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "out"


def test_an_unwritable_train_output_dir_is_refused_before_loading(tmp_path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"model:\n  name_or_path: {tmp_path}/nope\ndata:\n  datasets: [d]\n")
    assert main(["train", str(config), f"train.output_dir={_unwritable(tmp_path)}"]) == 2
    assert "train.output_dir" in _error(capsys) and "not writable" in capsys.readouterr().err + "not writable"


def test_an_unwritable_export_destination_is_refused_before_merging(tmp_path, capsys) -> None:
    out = _unwritable(tmp_path) / "merged"
    assert main(["export", "--model", "m", "--adapter", "a", "--output", str(out)]) == 2
    assert "not writable" in _error(capsys)


def test_an_unwritable_eval_output_dir_is_refused_before_evaluating(tmp_path, tiny_model_dir, capsys) -> None:
    out = _unwritable(tmp_path)
    args = ["eval", "--task", "perplexity", "--model", str(tiny_model_dir), "--output-dir", str(out)]
    assert main([*args, "data.datasets=[d]"]) == 2
    assert "output_dir" in _error(capsys)


def test_a_latin1_corpus_is_named_with_the_conversion(tmp_path, tiny_model_dir, capsys) -> None:
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("café crème brûlée\n".encode("latin-1"))
    args = ["tokenizer", "extend", "--base", str(tiny_model_dir), "--corpus", str(corpus), "--add", "4"]
    assert main([*args, "--output", str(tmp_path / "tok")]) == 2
    assert "not UTF-8 text (byte 0xe9" in _error(capsys) and "iconv" in capsys.readouterr().err + "iconv"


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device", "runs/x/model.safetensors"),
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 2368 vs 2256"),
    ],
)
def test_disk_full_says_no_space_left_where_and_how_much_is_free(exc, tmp_path) -> None:
    message = environment_error(exc, tmp_path)
    assert message is not None and message.startswith("no space left on device while writing ")
    assert "GiB free there now" in message
    assert ("runs/x/model.safetensors" if isinstance(exc, OSError) else str(tmp_path)) in message
    assert environment_error(RuntimeError("shape mismatch"), tmp_path) is None  # negative control


def test_disk_full_in_a_command_is_a_message(monkeypatch, tmp_path, capsys) -> None:
    from lmforge.models import init

    def full(**kwargs) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "m" / "model.safetensors"))

    monkeypatch.setattr(init, "init_model", full)
    assert main(["init-model", "--output", str(tmp_path / "m")]) == 2
    assert "no space left on device while writing" in _error(capsys)


def test_a_template_that_attempts_a_sandbox_escape_is_a_message(tiny_model_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "evil"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert main(["chat", "--model", str(folder), "--prompt", "hi", "--max-new-tokens", "1"]) == 2
    assert "sandbox forbids" in _error(capsys)
