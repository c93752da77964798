"""`ChatTemplate`: one chat format, the one way training, chat, serving, evaluation and RL turn messages into ids.

A conversation is a list of message dicts, the shape `tokenizer.apply_chat_template` takes:
``{"role": "system" | "user" | "assistant" | "tool", "content": str}`` (assistant messages may carry
``tool_calls`` and ``reasoning_content``). Every template, named or `auto`, is a Jinja chat template rendered in
a sandbox; the rendering is tokenised once, as a whole, so:
  * ``encode(messages).input_ids == tokenizer.apply_chat_template(messages, tokenize=True,
    sanitize_control_tokens=True)`` (plus the stop token for formats that end the final reply with none, see
    `locate`); without special-token text in the messages that is plain `apply_chat_template`;
  * ``encode_prompt(messages)`` equals the same with ``add_generation_prompt=True``;
  * labels train each assistant reply and the token that ends it, located by character spans (`locate`).
Special-token text typed inside a message stays text (QUALITY A16), as transformers' `sanitize_control_tokens`
encodes it.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError

from lmforge.templates.jinja import Message, RenderLimitError, compile_template, render_chat
from lmforge.templates.locate import ReplySpan, locate_replies, message_region
from lmforge.templates.spec import TemplateSpec
from lmforge.templates.token_labels import (
    IGNORE_INDEX,
    Tokenized,
    has_control_text,
    special_tokens_of,
    token_ranges,
    tokenize,
    tokenize_stream,
)
from lmforge.templates.validation import validate_messages
from lmforge.utils.errors import ConfigError, DataError

Tools = str | list | None
_PROBES: tuple[list[Message], ...] = (
    [{"role": "user", "content": "x"}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
)


@dataclass
class Encoded:
    """A training conversation as the trainer sees it."""

    input_ids: list[int]
    #: -100 except on every assistant reply and its end-of-turn token
    labels: list[int]
    #: token ranges [start, end) of the assistant replies, in order (what `labels` trains)
    replies: list[tuple[int, int]]
    #: trained tokens that also cover text outside a reply (a merge across the header/reply edge)
    straddling: int = 0
    #: whether the stop token was appended because the format ends the final reply with none (GLM-4)
    appended_stop: bool = False
    #: whether a message holds special-token text, encoded as text (QUALITY A16)
    control_text: bool = False

    def labels_for(self, replies: Collection[int], train_prompt: bool = False) -> list[int]:
        """Labels training only the replies whose index (0 = first reply) is in `replies`; with `train_prompt`
        every non-reply token is trained too."""
        labels = list(self.input_ids) if train_prompt else [IGNORE_INDEX] * len(self.input_ids)
        for k, (i, j) in enumerate(self.replies):
            labels[i:j] = self.input_ids[i:j] if k in replies else [IGNORE_INDEX] * (j - i)
        return labels


@dataclass
class _TokenizerFacts:
    """What a template needs to know about one tokenizer, computed once."""

    header: str
    stops: tuple[str, ...]
    stop_ids: list[int]
    append_id: int | None
    special_ids: frozenset[int] = frozenset()
    context: dict[str, Any] = field(default_factory=dict)


class ChatTemplate:
    """A Jinja chat template: the tokenizer's own (`auto`) or one of ours (`TemplateSpec`)."""

    def __init__(
        self,
        name: str,
        source: str,
        *,
        spec: TemplateSpec | None = None,
        stop_ids: Sequence[int] = (),
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.spec = spec
        self.options = {**(spec.options if spec else {}), **(options or {})}
        self._extra_stop_ids = list(stop_ids)
        self._facts: weakref.WeakKeyDictionary[Any, _TokenizerFacts] = weakref.WeakKeyDictionary()
        try:
            compile_template(source)
        except TemplateError as err:
            raise ConfigError(f"chat template '{name}' is not valid Jinja: {err}") from err

    # -- described by the spec (named templates) ---------------------------------------------------------------
    @property
    def special_tokens(self) -> tuple[str, ...]:
        return self.spec.special_tokens if self.spec else ()

    @property
    def bos_token(self) -> str | None:
        return self.spec.bos_token if self.spec else None

    @property
    def eos_token(self) -> str:
        return self.spec.eos_token if self.spec else ""

    def jinja(self) -> str:
        """The Jinja source (stored as the trained tokenizer's chat_template)."""
        return self.source

    # -- rendering ---------------------------------------------------------------------------------------------
    def render(self, tokenizer: Any, messages: list[Message], tools: Tools = None, add_generation_prompt=False) -> str:
        """The conversation as text, exactly as `apply_chat_template(..., tokenize=False)` renders it."""
        return render_chat(
            self.source, messages, self._facts_for(tokenizer).context, tools=tools,
            add_generation_prompt=add_generation_prompt, name=self.name,
        )  # fmt: skip

    def _facts_for(self, tokenizer: Any) -> _TokenizerFacts:
        facts = self._facts.get(tokenizer)
        if facts is None:
            facts = self._learn(tokenizer)  # stores itself first: its probe renderings need the context
        return facts

    def _learn(self, tokenizer: Any) -> _TokenizerFacts:
        context: dict[str, Any] = {**tokenizer.special_tokens_map, **self.options}
        if self.spec is not None:  # a named format on a tokenizer without its BOS/EOS still writes them
            for key, value in (("bos_token", self.spec.bos_token), ("eos_token", self.spec.eos_token)):
                if value and not context.get(key):
                    context[key] = value
        if self.spec is not None and self.spec.generic and not _adds_bos(tokenizer):
            context["bos_token"] = ""  # generic formats write BOS only where the tokenizer's own encoding would
        facts = _TokenizerFacts(header="", stops=(), stop_ids=[], append_id=None, context=context)
        self._facts[tokenizer] = facts  # rendering below needs the context
        facts.header = self._generation_header(tokenizer)
        specials = special_tokens_of(tokenizer)
        facts.special_ids = frozenset(specials.values())
        ids = [specials[tok] for tok in (self.spec.stop_tokens if self.spec else ()) if tok in specials]
        ids += self._extra_stop_ids + self._closing_ids(tokenizer, specials)
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        known = [(i, tokenizer.convert_ids_to_tokens(i)) for i in dict.fromkeys(ids)]
        known = [(i, token) for i, token in known if token is not None]  # a generation config may name other ids
        facts.stop_ids = [i for i, _ in known]
        facts.stops = tuple(token for _, token in known)
        eos = tokenizer.eos_token_id
        facts.append_id = eos if eos in facts.stop_ids else (facts.stop_ids[0] if facts.stop_ids else None)
        return facts

    def _generation_header(self, tokenizer: Any) -> str:
        """The text `add_generation_prompt` appends (e.g. ``<|im_start|>assistant\\n``); "" when there is none."""
        for probe in _PROBES:
            try:
                plain = self.render(tokenizer, probe)
                prompt = self.render(tokenizer, probe, add_generation_prompt=True)
            except RenderLimitError:
                raise
            except DataError:
                continue
            return prompt[len(plain) :] if prompt.startswith(plain) else ""
        return ""

    def _closing_ids(self, tokenizer: Any, specials: dict[str, int]) -> list[int]:
        """The first special token the template writes after a reply (its end-of-turn token), if any."""
        for probe in _PROBES:
            messages = [*probe, {"role": "assistant", "content": "y"}]
            try:
                text = self.render(tokenizer, messages)
                region = message_region(text, lambda m: self.render(tokenizer, m), messages, len(messages) - 1)
            except RenderLimitError:
                raise
            except DataError:
                continue
            after = text[region[1] :] if region else ""
            found = sorted((after.find(tok), idx) for tok, idx in specials.items() if tok in after)
            return [found[0][1]] if found else []
        return []

    # -- ids ---------------------------------------------------------------------------------------------------
    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        """Every id that ends an assistant turn (e.g. <|eot_id|>, <|eom_id|> and EOS for Llama-3.1)."""
        return list(self._facts_for(tokenizer).stop_ids)

    def encode(self, tokenizer: Any, messages: list[Message], tools: Tools = None) -> Encoded:
        """Input ids and labels of a training conversation (it ends with an assistant reply)."""
        return self.encode_many(tokenizer, [(messages, tools)])[0]

    def encode_many(self, tokenizer: Any, conversations: Sequence[tuple[list[Message], Tools]]) -> list[Encoded]:
        """`encode` for many conversations, their texts tokenised in one batch."""
        facts = self._facts_for(tokenizer)
        located: list[tuple[list[ReplySpan], bool]] = []  # each conversation's reply spans, and whether A16 applies

        def rendered() -> Iterator[tuple[str, list[tuple[int, int]]]]:
            for messages, tools in conversations:
                validate_messages(messages, for_training=True)
                render = self._renderer(tokenizer, tools)
                text = render(messages)
                control = has_control_text(tokenizer, messages)
                located.append((locate_replies(text, render, messages, facts.header, facts.stops), control))
                yield text, self._protected(tokenizer, text, render, messages) if control else []

        tokenized = tokenize_stream(tokenizer, rendered())
        return [
            self._encoded(t, spans, facts, control) for t, (spans, control) in zip(tokenized, located, strict=True)
        ]

    def encode_prompt(self, tokenizer: Any, messages: list[Message], tools: Tools = None) -> list[int]:
        """Ids for inference: the conversation (ending with a user/tool turn) plus the generation prompt."""
        validate_messages(messages, for_training=False)
        render = self._renderer(tokenizer, tools, add_generation_prompt=True)
        text = render(messages)
        protected = self._protected(tokenizer, text, render, messages) if has_control_text(tokenizer, messages) else []
        return tokenize(tokenizer, [text], [protected])[0].ids

    def _renderer(self, tokenizer: Any, tools: Tools, add_generation_prompt: bool = False) -> Any:
        return lambda messages: self.render(tokenizer, messages, tools, add_generation_prompt)

    def _protected(self, tokenizer: Any, text: str, render: Any, messages: list[Message]) -> list[tuple[int, int]]:
        """Character spans of the messages whose content holds special-token text (kept as text, A16)."""
        spans = []
        for k, msg in enumerate(messages):
            if has_control_text(tokenizer, [msg]):
                region = message_region(text, render, messages, k)
                spans += [region] if region else []
        return spans

    def _encoded(self, tokenized: Tokenized, spans: list[ReplySpan], facts: _TokenizerFacts, control: bool) -> Encoded:
        if not spans:
            raise DataError("the conversation has no assistant reply to train on")
        ranges, straddling = token_ranges(tokenized, [(s.start, s.end) for s in spans], facts.special_ids)
        ids = tokenized.ids
        append_id = facts.append_id if spans[-1].needs_stop else None
        appended = append_id is not None
        if append_id is not None:
            ids = [*ids, append_id]
            ranges[-1] = (ranges[-1][0], len(ids))  # through any whitespace the format leaves after the reply
        for span, (i, j) in zip(spans, ranges, strict=True):
            if i >= j:
                raise DataError(f"messages[{span.message_index}]: the assistant reply renders as no tokens")
        encoded = Encoded(list(ids), [], ranges, straddling, appended, control)
        encoded.labels = encoded.labels_for(range(len(ranges)))
        return encoded


def _adds_bos(tokenizer: Any) -> bool:
    if tokenizer.bos_token_id is None:
        return False
    return tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
