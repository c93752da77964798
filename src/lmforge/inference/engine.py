"""Generate replies with a trained model, building prompts with the same template code training used.

All decoding, in-process or behind the API, is the batching worker's loop (`batching.py` over `decoding.py`):
`generate_rows` runs it in the calling thread for chat, eval, RL rollouts and data generation, the server runs it
in its own thread. One loop means one set of sampling rules (`sampling.GenerationOptions`), one place where a stop id
ends a reply, and greedy replies that do not depend on the batch (QUALITY C16).
Prompts come only from `ChatTemplate.encode_prompt`, so the ids the model sees at inference are the ids it was
trained on (QUALITY C3, C17), and generation stops on every end-of-turn id of the template, not just EOS.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.inference.batching import BatchWorker, Event, Row
from lmforge.inference.detokenize import TextAssembler
from lmforge.inference.sampling import GenerationOptions
from lmforge.models.adapters import (
    attach_adapter,
    check_vocab_covers,
    load_base_model,
    load_plain_tokenizer,
    tokenizer_source,
)
from lmforge.models.model_loading import resolve_dtype
from lmforge.models.quantization import quantized_training, use_dequantized_base
from lmforge.templates import ChatTemplate, Message, get_template
from lmforge.utils.errors import ConfigError

__all__ = ["ChatEngine", "Generated", "GenerationOptions", "generate_rows", "load_engine"]


@dataclass(frozen=True)
class Generated:
    """One prompt's new tokens (`ids`, without the stop id) and why they ended: `finish` is "stop" (a stop id,
    `stop_id`) or "length" (max_new_tokens reached)."""

    ids: list[int]
    finish: str
    stop_id: int | None = None

    @property
    def ended(self) -> bool:
        return self.finish == "stop"


def generate_rows(
    model: Any,
    prompts: list[list[int]],
    options: GenerationOptions | Sequence[GenerationOptions],
    stop_ids: list[int],
    pad_id: int,
    max_batch_size: int | None = None,
) -> list[Generated]:
    """Decode every prompt in the calling thread (per-prompt options allowed), continuously batched: up to
    `max_batch_size` rows at once (default: all), rows leaving as they end and waiting ones joining."""
    per_row = [options] * len(prompts) if isinstance(options, GenerationOptions) else list(options)
    rows = [Row(p, o) for p, o in zip(prompts, per_row, strict=True)]
    if rows:
        BatchWorker(model, pad_id, stop_ids, max_batch_size=max_batch_size or len(rows)).run_here(rows)
    return [Generated(r.ids, r.finish or "length", r.stop_id) for r in rows]


class ChatEngine:
    """A model, its tokenizer and chat template; turns conversations into replies."""

    def __init__(self, model: Any, tokenizer: Any, template: ChatTemplate) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.stop_ids = template.stop_token_ids(tokenizer)
        if not self.stop_ids:
            raise ConfigError(f"template {template.name!r} gives no stop token for this tokenizer; cannot end replies")
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]

    def prompt_ids(self, messages: list[Message], tools: str | None = None) -> list[int]:
        """The ids a conversation ending on a user turn is sent as: exactly what training used as its prefix
        (`tools`: the tool definitions as a JSON list, rendered in the template's own tool format)."""
        return self.template.encode_prompt(self.tokenizer, messages, tools)

    def decode(
        self, prompts: list[list[int]], options: GenerationOptions | Sequence[GenerationOptions]
    ) -> list[Generated]:
        """The in-process API: each prompt's new tokens and finish reason, decoded together."""
        return generate_rows(self.model, prompts, options, self.stop_ids, self.pad_id)

    def generate(self, messages: list[Message], options: GenerationOptions) -> str:
        return self.generate_batch([messages], options)[0]

    def generate_batch(self, conversations: list[list[Message]], options: GenerationOptions) -> list[str]:
        """One reply per conversation, generated together in one batch."""
        replies = self.generate_ids([self.prompt_ids(m) for m in conversations], options)
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in replies]

    def generate_ids(self, prompts: list[list[int]], options: GenerationOptions) -> list[list[int]]:
        """New token ids per prompt, without the stop id."""
        return [g.ids for g in self.decode(prompts, options)]

    def stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        return self.stream_ids(self.prompt_ids(messages), options)

    def stream_ids(self, prompt: list[int], options: GenerationOptions) -> Iterator[str]:
        """The reply as text pieces while it is generated (the loop runs in a helper thread; closing the iterator
        early cancels the row)."""
        events: queue.Queue[Event] = queue.Queue()
        row = Row(prompt, options, events.put)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                BatchWorker(self.model, self.pad_id, self.stop_ids, max_batch_size=1).run_here([row])
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
                events.put(("error", str(exc)))

        thread = threading.Thread(target=run, name="lmforge-stream", daemon=True)
        thread.start()
        text = TextAssembler(self.tokenizer, [])
        try:
            while (event := events.get())[0] == "token":
                if piece := text.add(event[1][0]):
                    yield piece
            if event[0] == "done" and (tail := text.finish()):
                yield tail
        finally:
            row.cancelled = True
            thread.join()
        if errors:
            raise errors[0]


def load_engine(
    model: str,
    adapter: str | None = None,
    template: str = "auto",
    dtype: str = "auto",
    allow_unsafe_pickle: bool = False,
    trust_remote_code: bool = False,
) -> ChatEngine:
    """Model folder (+ optional adapter folder, whose tokenizer wins when it has one) ready to chat."""
    tokenizer = load_plain_tokenizer(tokenizer_source(model, adapter), trust_remote_code)
    chat_template = get_template(template, tokenizer)  # `auto` without a chat_template lists the valid names
    loaded = load_base_model(model, resolve_dtype(dtype), allow_unsafe_pickle, trust_remote_code)
    if adapter:
        qlora = quantized_training(adapter)
        if qlora is not None:  # the adapter was trained on dequant(quant(W)): give it those weights, not W
            use_dequantized_base(loaded, model, qlora)
        loaded = attach_adapter(loaded, adapter, allow_unsafe_pickle)
    check_vocab_covers(loaded, tokenizer)
    if torch.cuda.is_available():
        loaded = loaded.to("cuda")
    return ChatEngine(loaded, tokenizer, chat_template)
