"""Generate replies with a trained model, building prompts with the same template code training used.

Prompts come only from `ChatTemplate.encode_prompt`, so the ids the model sees at inference are the ids it was
trained on (QUALITY C3, C17), and generation stops on every end-of-turn id of the template, not just EOS.
Batches are padded on the left by us, whatever the tokenizer's padding side, so batched greedy decoding gives the
same tokens as one prompt at a time (C16).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.models.adapters import (
    attach_adapter,
    check_vocab_covers,
    load_base_model,
    load_plain_tokenizer,
    tokenizer_source,
)
from lmforge.models.loading import resolve_dtype
from lmforge.models.quantization import quantized_training, use_dequantized_base
from lmforge.templates import ChatTemplate, Message, get_template
from lmforge.utils.errors import ConfigError


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling settings; temperature 0 means greedy decoding."""

    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.0
    seed: int | None = None

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "do_sample": self.temperature > 0,
        }
        if self.temperature > 0:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:  # keep the model's generation_config sampling defaults from triggering warnings in greedy mode
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs


def pad_left(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every prompt ending at the last column, as decoder-only generation needs."""
    width = max(len(p) for p in prompts)
    ids = [[pad_id] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    return torch.tensor(ids), torch.tensor(mask)


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

    def generate(self, messages: list[Message], options: GenerationOptions) -> str:
        return self.generate_batch([messages], options)[0]

    def generate_batch(self, conversations: list[list[Message]], options: GenerationOptions) -> list[str]:
        """One reply per conversation, generated together in one left-padded batch."""
        replies = self.generate_ids([self.prompt_ids(m) for m in conversations], options)
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in replies]

    @torch.no_grad()
    def generate_ids(self, prompts: list[list[int]], options: GenerationOptions) -> list[list[int]]:
        """New token ids per prompt, cut before the first stop id."""
        input_ids, attention_mask = pad_left(prompts, self.pad_id)
        device = self.model.device
        out = self.model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **self._kwargs(options)
        )
        return [self._until_stop(row.tolist()) for row in out[:, input_ids.shape[1] :]]

    def stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        """The reply as text pieces while it is generated (transformers' TextIteratorStreamer in a thread)."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        input_ids = torch.tensor([self.prompt_ids(messages)], device=self.model.device)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.no_grad():
                    self.model.generate(**kwargs, **self._kwargs(options))
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise errors[0]

    def _kwargs(self, options: GenerationOptions) -> dict[str, Any]:
        if options.seed is not None:
            torch.manual_seed(options.seed)
        return {**options.generate_kwargs(), "eos_token_id": self.stop_ids, "pad_token_id": self.pad_id}

    def _until_stop(self, ids: list[int]) -> list[int]:
        stops = set(self.stop_ids)
        return next((ids[:i] for i, t in enumerate(ids) if t in stops), ids)


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
