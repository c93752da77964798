"""An Ollama Modelfile whose TEMPLATE reproduces, character for character, the prompts the model was trained on.

Ollama prompts with a Go template, not Jinja, and only recognises a few chat templates by itself; an exported
fine-tune without TEMPLATE/stop lines "loses its training" (LlamaFactory#6020, ollama#8363). The template is
derived from our own template code: conversations with marker contents are rendered exactly as training and
inference render them, and cut at the markers into the pieces around each message. SYSTEM is `--system`, or the
system prompt most of the training data used (read through the run's config). The Go template then
glues those pieces around real messages, and `render_pieces` (the same gluing in Python) is checked against the
training encoding on several conversations before anything is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.export.verify import ExportError
from lmforge.utils.errors import LmforgeError
from lmforge.utils.logging import get_logger

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate

logger = get_logger(__name__)

SYS, U1, A1, U2, A2, U3 = "SYSMARKQ", "USERMARKONE", "ASSTMARKONE", "USERMARKTWO", "ASSTMARKTWO", "USERMARKTHREE"


@dataclass(frozen=True)
class ChatPieces:
    """Text around messages: [open | open_sys SYSTEM sys_close] USER to_assistant reply_prefix ASSISTANT end
    (between USER to_assistant ...)."""

    open: str  # before the first user message when there is no system prompt
    open_sys: str  # before the system prompt
    sys_close: str  # between the system prompt and the first user message
    to_assistant: str  # after a user message, up to the assistant's first token (the generation prompt)
    reply_prefix: str  # trained text before an assistant message's content (generated, so not in to_assistant)
    end: str  # after an assistant message (its end-of-turn)
    between: str  # after an assistant's end-of-turn, before the next user message


def _text(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


def _cut(text: str, *markers: str) -> list[str]:
    parts = []
    for marker in markers:
        head, found, text = text.partition(marker)
        if not found:
            raise ExportError(f"Modelfile: marker {marker!r} not found in the rendered conversation")
        parts.append(head)
    return [*parts, text]


def derive_pieces(template: ChatTemplate, tokenizer: Any, bos_added: bool) -> ChatPieces:
    """Cut conversations rendered by `template` at marker contents. `bos_added`: llama.cpp adds BOS itself.

    The prompt pieces come from the inference renderings (generation prompt included), the reply pieces from the
    training rendering: what follows the prompt up to the reply text is written by the model (e.g. " " or a think
    block), and the reply's end runs through its first stop token."""
    convo = [{"role": "user", "content": U1}, {"role": "assistant", "content": A1}]
    convo += [{"role": "user", "content": U2}, {"role": "assistant", "content": A2}]
    full = template.render(tokenizer, convo)
    prompt = template.render(tokenizer, convo[:1], add_generation_prompt=True)
    if not full.startswith(prompt):
        raise ExportError(
            f"Modelfile: the chat template {template.name!r} renders a reply's prompt differently inside a longer "
            "conversation, which an Ollama TEMPLATE cannot express"
        )
    open_, to_assistant = _cut(prompt, U1)
    reply_prefix, tail = _cut(full[len(prompt) :], A1)
    tail, _ = _cut(tail, U2)
    stops = [s for s in stop_strings(tokenizer, template.stop_token_ids(tokenizer)) if s and s in tail]
    cut = min((tail.index(s) + len(s) for s in stops), default=0)
    end, between = tail[:cut], tail[cut:]
    with_sys = template.render(tokenizer, [{"role": "system", "content": SYS}, convo[0]], add_generation_prompt=True)
    open_sys, sys_close, _ = _cut(with_sys, SYS, U1)
    if bos_added and tokenizer.bos_token:
        open_, open_sys = (p.removeprefix(tokenizer.bos_token) for p in (open_, open_sys))
    return ChatPieces(open_, open_sys, sys_close, to_assistant, reply_prefix, end, between)


def render_pieces(pieces: ChatPieces, messages: list[dict[str, str]]) -> str:
    """What the Go template of `go_template` renders for `messages` (the check's reference implementation)."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    text = f"{pieces.open_sys}{system}{pieces.sys_close}" if system else pieces.open
    started = False
    for i, message in enumerate(messages):
        last = i == len(messages) - 1
        if message["role"] == "user":
            text += (pieces.between if started else "") + message["content"] + pieces.to_assistant
            started = True
        elif message["role"] == "assistant":
            text += pieces.reply_prefix + message["content"] + ("" if last else pieces.end)
    return text


def _go(text: str) -> str:
    if "{{" in text or '"""' in text:
        raise ExportError(f"Modelfile: template text {text!r} contains '{{{{' or '\"\"\"' and cannot be quoted")
    return text


def go_template(pieces: ChatPieces) -> str:
    p = ChatPieces(*(_go(getattr(pieces, f)) for f in ChatPieces.__dataclass_fields__))
    return (
        f"{{{{- if .System }}}}{p.open_sys}{{{{ .System }}}}{p.sys_close}{{{{ else }}}}{p.open}{{{{ end }}}}\n"
        "{{- $started := false }}\n"
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        f'{{{{- if eq .Role "user" }}}}{{{{ if $started }}}}{p.between}{{{{ end }}}}{{{{ .Content }}}}{p.to_assistant}'
        "{{ $started = true }}\n"
        f'{{{{- else if eq .Role "assistant" }}}}{p.reply_prefix}{{{{ .Content }}}}'
        f"{{{{ if not $last }}}}{p.end}{{{{ end }}}}\n"
        "{{- end }}\n"
        "{{- end }}"
    )


def check_pieces(pieces: ChatPieces, template: ChatTemplate, tokenizer: Any, bos_added: bool) -> int:
    """The pieces glued around real messages give the training prompts; returns the number of conversations."""
    conversations = [
        [{"role": "user", "content": "Hi there"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"}],
        [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "third"},
        ],
        [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
    ]
    prefix = tokenizer.bos_token if bos_added and tokenizer.bos_token else ""
    for convo in conversations:
        want = _text(tokenizer, template.encode_prompt(tokenizer, convo))
        got = prefix + render_pieces(pieces, convo)
        if got != want:
            raise ExportError(
                f"Modelfile TEMPLATE does not reproduce the training prompt for {len(convo)} messages:\n"
                f"  template: {got!r}\n  training: {want!r}"
            )
    return len(conversations)


def stop_strings(tokenizer: Any, stop_ids: list[int]) -> list[str]:
    return list(dict.fromkeys(_text(tokenizer, [i]) for i in stop_ids))


def modelfile_text(gguf_name: str, pieces: ChatPieces | None, stops: list[str], system: str | None) -> str:
    """FROM, TEMPLATE (when the model has a chat template), SYSTEM (when given), one stop line per end-of-turn."""
    lines = [f"FROM ./{gguf_name}"]
    if pieces is not None:
        lines.append(f'TEMPLATE """{go_template(pieces)}"""')
    if system:
        lines.append(f'SYSTEM """{_go(system)}"""')
    lines += [f"PARAMETER stop {_quote(stop)}" for stop in stops]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def training_system_prompt(run_dir: str, limit: int = 2000) -> str | None:
    """The system prompt the run's training data used, when most of its conversations share one: the Modelfile's
    SYSTEM, so Ollama prompts as training did. None when the data had none, had many, or cannot be read any more
    (the run's `lmforge_config.yaml` names the data; a moved dataset only costs the SYSTEM line, with a warning)."""
    from lmforge.config.config_loading import load_config
    from lmforge.data.catalog import resolve_specs
    from lmforge.data.formats import iter_conversations

    snapshot = Path(run_dir) / "lmforge_config.yaml"
    if not snapshot.is_file():
        return None
    systems: Counter[str] = Counter()
    seen = 0
    try:
        cfg = load_config(snapshot)
        for spec in resolve_specs(cfg.data.datasets, cfg.data, "data.datasets"):
            for conv in islice(iter_conversations(spec, cfg.data, cfg.stage, None, []), limit):
                messages = conv.get("messages") or conv.get("prompt") or []
                seen += 1
                if messages and messages[0].get("role") == "system" and messages[0].get("content"):
                    systems[messages[0]["content"]] += 1
    except (LmforgeError, OSError) as err:
        logger.warning(
            "Modelfile: no SYSTEM from the training data of %s (%s); pass --system to set one", run_dir, err
        )
        return None
    if not systems:
        return None
    text, count = systems.most_common(1)[0]
    return text if 2 * count > seen else None
