"""Named templates render exactly what the real models' chat templates render, and fail where those fail.

Ground truth: the verbatim chat templates of the real models (tests/fixtures/real_templates, or the shared
reference copy in ../shared/templates with its attribution), rendered by the same sandboxed renderer as ours with
the same variables. The generic formats, which have no real counterpart, are compared with the renderings of
lmforge's former `FormatTemplate` definitions (data/generic_renderings.json, produced at commit 4202435).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from jinja2 import TemplateError

from lmforge.templates.families import SPECS
from lmforge.templates.jinja import compile_template, render_bounded
from lmforge.templates.spec import TemplateSpec
from tests.unit.templates.cases import CASES, Case

ROOT = Path(__file__).resolve().parents[3]
REAL_TEMPLATE_DIRS = (ROOT / "tests" / "fixtures" / "real_templates", ROOT.parent / "shared" / "templates")
# spec name -> real template file stem, where they differ
REAL_FILE = {"mistral-v1": "mistral-v1-sys", "phi3": "phi3-mini", "phi3.5": "phi3.5-mini"}
GENERIC = {"default", "plain", "alpaca", "vicuna", "chatml"}
# options besides each spec's defaults that change the rendering
OPTION_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "qwen3": [{"enable_thinking": False}],
    "llama3.1": [
        {"tools_in_user_message": False, "date_string": "01 Jan 2025"},
        {"builtin_tools": ["brave_search", "wolfram_alpha"]},
    ],
    "llama3.2": [{"tools_in_user_message": False, "date_string": "01 Jan 2025"}],
}
SPEC = {spec.name: spec for spec in SPECS}


def real_template_dir() -> Path | None:
    return next((d for d in REAL_TEMPLATE_DIRS if d.is_dir() and any(d.glob("*.jinja"))), None)


def real_source(name: str) -> str | None:
    folder = real_template_dir()
    path = folder / f"{REAL_FILE.get(name, name)}.jinja" if folder else None
    return path.read_text(encoding="utf-8") if path and path.is_file() else None


@functools.cache
def compiled(source: str) -> Any:
    return compile_template(source)


def render(source: str, spec: TemplateSpec, case: Case, prompt: bool, options: dict[str, Any]) -> str:
    return render_bounded(
        compiled(source),
        messages=case.prompt() if prompt else case.messages,
        tools=case.tools,
        add_generation_prompt=prompt,
        bos_token=spec.bos_token or "",
        eos_token=spec.eos_token,
        **{**spec.options, **options},
    )


def outcome(source: str, spec: TemplateSpec, case: Case, prompt: bool, options: dict[str, Any]) -> str | Exception:
    try:
        return render(source, spec, case, prompt, options)
    except Exception as err:  # a real template may fail with any error (TypeError on None, ...)
        return err


def check_same(spec: TemplateSpec, real: str, case: Case, prompt: bool, options: dict[str, Any]) -> None:
    ours = outcome(spec.jinja, spec, case, prompt, options)
    theirs = outcome(real, spec, case, prompt, options)
    if isinstance(theirs, Exception):
        assert isinstance(ours, TemplateError), f"the real template fails ({theirs!r}); ours gives {ours!r}"
    else:
        assert ours == theirs


WITH_REAL = [name for name in SPEC if real_source(name) is not None]
RENDER_PARAMS = [
    pytest.param(name, options, id=f"{name}-{i}" if i else name)
    for name in WITH_REAL
    for i, options in enumerate([{}, *OPTION_VARIANTS.get(name, [])])
]


@pytest.mark.parametrize("prompt", [False, True], ids=["full", "prompt"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize(("name", "options"), RENDER_PARAMS)
def test_named_template_renders_what_the_real_one_renders(name: str, options: dict, case: Case, prompt: bool):
    spec = SPEC[name]
    check_same(spec, real_source(name), case, prompt, options)


MUTATIONS = [  # (spec, our Jinja text, a plausible slip): each must be caught by the table above
    ("qwen2.5", "You are Qwen, created by Alibaba Cloud.", "You are Qwen, made by Alibaba Cloud."),
    ("qwen3", "(loop.last or reasoning)", "loop.last"),
    ("llama3.1", "Cutting Knowledge Date: December 2023", "Cutting Knowledge Date: Dec 2023"),
    ("mistral-v3", "if loop.last and system", "if loop.first and system"),
    ("mistral-v0.1", "'[INST] ' + text_of(message) + ' [/INST]'", "'[INST] ' + text_of(message) + '[/INST]'"),
    ("gemma3", "{{- message.content | trim }}", "{{- message.content }}"),
    ("glm4", "{%- if message.content %}", "{%- if true %}"),
    ("phi3.5", "else eos_token", "else ''"),
    ("deepseek-v3", "+ ('' if loop.first else '\\n\\n') +", "+ ('' if loop.first else '\\n') +"),
]


@pytest.mark.parametrize(("name", "original", "slip"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_slip_in_a_named_template_is_caught(name: str, original: str, slip: str):
    spec, real = SPEC[name], real_source(name)
    if real is None:
        pytest.skip("real template not available")
    assert original in spec.jinja
    altered = TemplateSpec(**{**spec.__dict__, "jinja": spec.jinja.replace(original, slip)})
    failures = 0
    for case in CASES:
        for prompt in (False, True):
            try:
                check_same(altered, real, case, prompt, {})
            except AssertionError:
                failures += 1
    assert failures, f"altering {name!r} went unnoticed"


def test_every_real_template_has_a_named_spec():
    folder = real_template_dir()
    if folder is None:
        pytest.skip("no real templates found in " + ", ".join(map(str, REAL_TEMPLATE_DIRS)))
    stems = {path.stem for path in folder.glob("*.jinja")}
    covered = {REAL_FILE.get(name, name) for name in SPEC}
    assert stems <= covered, f"real templates without a spec: {sorted(stems - covered)}"
    assert len(WITH_REAL) == len(stems)


def test_names_and_aliases_are_unique_and_specs_complete():
    names = [n for spec in SPECS for n in (spec.name, *spec.aliases)]
    assert len(names) == len(set(names))
    for spec in SPECS:
        compile_template(spec.jinja)
        assert spec.models
        assert all(f"{option}" in spec.jinja for option in spec.options)
        assert spec.supports_tools <= ("tools" in spec.jinja)


GOLDEN = json.loads((Path(__file__).parent / "data" / "generic_renderings.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_generic_template_renders_as_before(key: str):
    name, bos, case_id, mode = key.split("|")
    spec, case = SPEC[name], next(c for c in CASES if c.id == case_id)
    prompt = mode == "prompt"
    text = render_bounded(
        compiled(spec.jinja),
        messages=case.prompt() if prompt else case.messages,
        tools=case.tools,
        add_generation_prompt=prompt,
        bos_token="" if bos == "nobos" else bos,
        eos_token="</s>",
    )
    assert text == GOLDEN[key]


@pytest.mark.parametrize("name", sorted(GENERIC - {"chatml"}))
def test_generic_template_rejects_tool_calls(name: str):
    case = next(c for c in CASES if c.id == "tool_call")
    with pytest.raises(TemplateError, match="cannot render tool calls"):
        render(SPEC[name].jinja, SPEC[name], case, False, {})


def test_qwen2_renders_the_qwen2_release_format():
    """Qwen2-7B-Instruct's own rendering, as LLaMA-Factory's tests/data/test_template.py asserts it."""
    messages = [
        {"role": "user", "content": "How are you"},
        {"role": "assistant", "content": "I am fine!"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "很高兴认识你！"},
    ]
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHow are you<|im_end|>\n"
        "<|im_start|>assistant\nI am fine!<|im_end|>\n"
        "<|im_start|>user\n你好<|im_end|>\n"
        "<|im_start|>assistant\n很高兴认识你！<|im_end|>\n"
    )
    spec = SPEC["qwen2"]
    case = Case("llamafactory", messages)
    assert render(spec.jinja, spec, case, False, {}) == expected
    assert render(spec.jinja, spec, case, True, {}) == expected[: -len("很高兴认识你！<|im_end|>\n")]
