"""Data-test helpers: a character-level tokenizer and a small ChatML-like template, built in-process."""

from __future__ import annotations

import string
from typing import Any

from lmforge.config.schema import DataConfig, RunConfig
from lmforge.templates.base import ChatTemplate

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


FAKE_CHATML_JINJA = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content if m.content else m.tool_calls | string }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class FakeChatML(ChatTemplate):
    """`<|im_start|>role\ncontent<|im_end|>\n` per message; a reply trains its content plus <|im_end|>."""

    def __init__(self, name: str = "fake_chatml") -> None:
        super().__init__(name, FAKE_CHATML_JINJA)


def make_cfg(tmp_path, datasets: list, stage: str = "sft", train: dict | None = None, **data: Any) -> RunConfig:
    """A RunConfig for data tests; the cache goes under tmp_path unless given."""
    data.setdefault("cache_dir", str(tmp_path / "cache"))
    return RunConfig(
        stage=stage,
        data=DataConfig(datasets=datasets, **data),
        train={"output_dir": str(tmp_path / "out"), **(train or {})},
    )
