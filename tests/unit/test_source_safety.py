"""QUALITY D2: an AST check over our source for calls that turn untrusted input into code execution.

An AST walk (not grep) so aliases and formatting cannot hide a call. Each rule has a positive sample below
proving the checker catches it, so the check itself cannot silently rot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "lmforge"


def _call_name(node: ast.Call) -> str:
    func = node.func
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    # a chain rooted in an expression (e.g. `load(...).eval()`) is a method call, never a builtin
    parts.append(func.id if isinstance(func, ast.Name) else "<expr>")
    return ".".join(reversed(parts))


def _kw(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _is_true(expr: ast.expr | None) -> bool:
    return isinstance(expr, ast.Constant) and expr.value is True


def violations(source: str) -> list[str]:
    """Unsafe calls in `source`, as 'line: reason' strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        last = name.rsplit(".", 1)[-1]
        reason = None
        if last == "load" and name.startswith("torch") and not _is_true(_kw(node, "weights_only")):
            reason = "torch.load without weights_only=True"
        elif name in ("pickle.load", "pickle.loads", "dill.load", "dill.loads", "cloudpickle.load"):
            reason = f"{name} (pickle)"
        elif name in ("yaml.load", "yaml.full_load", "yaml.unsafe_load"):
            reason = f"{name} (use yaml.safe_load)"
        elif name in ("eval", "exec", "os.system", "os.popen"):
            reason = f"{name}()"
        elif name.startswith("subprocess.") and (
            _is_true(_kw(node, "shell")) or (node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr)))
        ):
            reason = f"{name} with shell=True or a string command (use an argv list)"
        elif last == "Environment" and name in ("Environment", "jinja2.Environment"):
            reason = "jinja2.Environment (use jinja2.sandbox.ImmutableSandboxedEnvironment)"
        elif _is_true(_kw(node, "trust_remote_code")):
            reason = "trust_remote_code=True literal (must come from the user's config)"
        if reason:
            found.append(f"{node.lineno}: {reason}")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load('x')",
        "import torch\ntorch.load('x', weights_only=False)",
        "import pickle\npickle.loads(b'')",
        "import yaml\nyaml.load(s)",
        "eval('1')",
        "import os\nos.system('id')",
        "import subprocess\nsubprocess.run('ls -l', shell=True)",
        "import subprocess\nsubprocess.check_output(f'ls {x}')",
        "import jinja2\njinja2.Environment()",
        "from transformers import AutoModel\nAutoModel.from_pretrained(p, trust_remote_code=True)",
    ],
)
def test_checker_catches_unsafe_call(snippet: str) -> None:
    assert violations(snippet), snippet


def test_checker_accepts_safe_forms() -> None:
    safe = (
        "import torch, yaml, subprocess\n"
        "torch.load('x', weights_only=True)\nyaml.safe_load(s)\nsubprocess.run(['ls', '-l'])\n"
        "from jinja2.sandbox import ImmutableSandboxedEnvironment\nImmutableSandboxedEnvironment()\n"
        "AutoModel.from_pretrained(p, trust_remote_code=cfg.trust_remote_code)\n"
        "model.eval()\nPeftModel.from_pretrained(m, p).eval()\n"
    )
    assert violations(safe) == []


def test_source_has_no_unsafe_calls() -> None:
    problems = [
        f"{path.relative_to(SRC.parent)}:{v}"
        for path in sorted(SRC.rglob("*.py"))
        for v in violations(path.read_text(encoding="utf-8"))
    ]
    assert problems == []
