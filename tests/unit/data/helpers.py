"""Data-test helpers: a character-level tokenizer and a small ChatML-like template, built in-process."""

from __future__ import annotations

import string
from typing import Any

from lmforge.config.schema import DataConfig, RunConfig
from lmforge.templates.base import ChatTemplate, EncodedTurn
from lmforge.utils.errors import DataError

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def build_char_tokenizer() -> Any:
    """One token per printable ASCII character (vocab < 128), so expected ids are easy to write by hand."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return tok


class FakeChatML(ChatTemplate):
    """`<|im_start|>role\\ncontent<|im_end|>\\n` per message; the response is the content plus <|im_end|>."""

    name = "fake_chatml"
    eos_token = "<|im_end|>"

    def _ids(self, tokenizer: Any, text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def _header(self, role: str) -> str:
        return f"<|im_start|>{role}\n"

    def encode_turns(self, tokenizer: Any, messages: list[dict], tools: str | None = None) -> list[EncodedTurn]:
        if not messages or messages[-1]["role"] != "assistant":
            raise DataError("conversation must end with an assistant message")
        turns, prompt = [], ""
        for msg in messages:
            if msg["role"] == "assistant":
                content = msg["content"] or str(msg.get("tool_calls"))
                prompt += self._header("assistant")
                turns.append(EncodedTurn(self._ids(tokenizer, prompt), self._ids(tokenizer, content + "<|im_end|>")))
                prompt = "\n"
            else:
                prompt += f"{self._header(msg['role'])}{msg['content']}<|im_end|>\n"
        return turns

    def encode_prompt(self, tokenizer: Any, messages: list[dict], tools: str | None = None) -> list[int]:
        text = "".join(f"{self._header(m['role'])}{m['content']}<|im_end|>\n" for m in messages)
        return self._ids(tokenizer, text + self._header("assistant"))

    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        return [tokenizer.convert_tokens_to_ids("<|im_end|>")]


def make_cfg(tmp_path, datasets: list, stage: str = "sft", train: dict | None = None, **data: Any) -> RunConfig:
    """A RunConfig for data tests; the cache goes under tmp_path unless given."""
    data.setdefault("cache_dir", str(tmp_path / "cache"))
    return RunConfig(
        stage=stage,
        data=DataConfig(datasets=datasets, **data),
        train={"output_dir": str(tmp_path / "out"), **(train or {})},
    )
