"""init_model: deterministic output, and a folder plain transformers loads with the template's specials and Jinja."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmforge.models import init
from lmforge.models.init import default_corpus, init_model, iter_corpus_texts
from lmforge.templates import get_template
from lmforge.utils.errors import ConfigError

SMALL_VOCAB = 320  # keeps the tokenizer training and the saved files small


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "a.txt").write_text("The quick brown fox jumps over the lazy dog.\n" * 20 + "héllo wörld 123\n")
    rows = [{"instruction": f"Add {i} and {i + 1}.", "output": f"The sum is {2 * i + 1}."} for i in range(30)]
    (folder / "b.json").write_text(json.dumps(rows))
    (folder / "c.jsonl").write_text("".join(json.dumps({"text": f"document number {i}"}) + "\n" for i in range(30)))
    return [str(folder / name) for name in ("a.txt", "b.json", "c.jsonl")]


def _init(out: Path, corpus: list[str], **kw) -> Path:
    init_model(str(out), corpus=corpus, vocab_size=SMALL_VOCAB, **kw)
    return out


def test_same_seed_gives_byte_identical_files(tmp_path: Path, corpus: list[str]) -> None:
    a, b, c = (_init(tmp_path / name, corpus, seed=seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    for name in ("model.safetensors", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()  # negative control


@pytest.mark.parametrize(("arch", "template"), [("llama", "llama3"), ("qwen2", "chatml"), ("llama", "chatml")])
def test_output_loads_with_plain_transformers(tmp_path: Path, corpus: list[str], arch: str, template: str) -> None:
    out = _init(tmp_path / "m", corpus, arch=arch, template=template)
    chat = get_template(template, None)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == arch and not model.config.tie_word_embeddings
    assert model.config.vocab_size % 64 == 0 and model.config.vocab_size >= len(tokenizer)
    assert tokenizer.chat_template == chat.jinja()
    assert tokenizer.eos_token == chat.eos_token and tokenizer.bos_token == chat.bos_token
    assert tokenizer.pad_token == "<|pad|>"
    for token in chat.special_tokens:  # each special is one id, never split
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [tokenizer.convert_tokens_to_ids(token)]
    assert model.generation_config.eos_token_id == chat.stop_token_ids(tokenizer)
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    first = tokenizer("hi")["input_ids"][0]
    assert (first == tokenizer.bos_token_id) == (chat.bos_token is not None)


def test_sizes_follow_the_bench_shapes(tmp_path: Path, corpus: list[str]) -> None:
    config = json.loads((_init(tmp_path / "m", corpus, size="tiny") / "config.json").read_text())
    shape = [config[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")]
    assert shape == [256, 4, 4, 688]


def test_unknown_arch_and_size_are_config_errors(tmp_path: Path, corpus: list[str]) -> None:
    with pytest.raises(ConfigError, match="valid sizes"):
        _init(tmp_path / "m", corpus, size="huge")
    with pytest.raises(ConfigError, match="llama, qwen2"):
        _init(tmp_path / "m", corpus, arch="gpt2")


def test_corpus_reads_every_string_field(corpus: list[str]) -> None:
    texts = list(iter_corpus_texts(corpus))
    assert "héllo wörld 123\n" in texts and "Add 3 and 4." in texts and "document number 7" in texts


def test_corpus_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl, line 2"):
        list(iter_corpus_texts([str(bad)]))
    with pytest.raises(ConfigError, match=r"\.json, \.jsonl, \.txt"):
        list(iter_corpus_texts([str(tmp_path / "x.csv")]))


def test_default_corpus_is_the_bundled_demo_data() -> None:
    assert {Path(p).name for p in default_corpus()} == {"alpaca_en_demo.json", "c4_demo.jsonl", "wiki_demo.txt"}


def test_a_tokenizer_that_reloads_differently_is_caught(
    tmp_path: Path, corpus: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: without Qwen2's own pre-tokenization the reload check must fire."""
    original = init._set_pre_tokenization
    monkeypatch.setattr(init, "_set_pre_tokenization", lambda backend, arch: original(backend, "llama"))
    with pytest.raises(RuntimeError, match="encodes differently"):
        _init(tmp_path / "m", corpus, arch="qwen2")


def test_existing_model_is_never_replaced_by_random_weights(tmp_path: Path, corpus: list[str]) -> None:
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "model.safetensors").write_bytes(b"trained weights")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"not made by init-model\); nothing was written"):
            _init(trained, corpus, overwrite=overwrite)
    assert [p.name for p in trained.iterdir()] == ["model.safetensors"]
    assert (trained / "model.safetensors").read_bytes() == b"trained weights"


def test_overwrite_replaces_an_earlier_init_model_output(tmp_path: Path, corpus: list[str]) -> None:
    first = (_init(tmp_path / "m", corpus, seed=0) / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="pass --overwrite"):
        _init(tmp_path / "m", corpus, seed=1)
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == first
    assert (_init(tmp_path / "m", corpus, seed=1, overwrite=True) / "model.safetensors").read_bytes() != first
