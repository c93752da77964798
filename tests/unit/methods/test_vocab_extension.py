"""`lmforge tokenizer extend`: old ids and tokenisations stay, new pieces are used and round-trip, and a run with
the extended tokenizer trains the new embedding rows and saves them with the adapter (QUALITY C12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from lmforge.cli import main
from lmforge.export.merge import export_merged
from lmforge.models.adapters import attach_adapter, load_base_model
from lmforge.models.vocab import extend_tokenizer
from lmforge.utils.errors import ConfigError
from tests.integration.runs import QA_PAIRS

from .runs import fixed_batch, logits, train_method

DOMAIN = [
    "photosynthesis converts sunlight into chemical energy in chloroplasts",
    "mitochondria produce adenosine triphosphate through oxidative phosphorylation",
    "chlorophyll absorbs photons and photosynthesis releases oxygen",
] * 3
OLD_TEXTS = [q + " " + a for q, a in QA_PAIRS] + ["12345 !!! ??", "<|im_start|>user\nhi<|im_end|>"]


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, dict[str, int]]:
    folder = tmp_path_factory.mktemp("vocab")
    corpus = folder / "domain.txt"
    corpus.write_text("\n".join(DOMAIN), encoding="utf-8")
    result = extend_tokenizer(str(tiny_model_dir), [str(corpus)], 24, str(folder / "extended"))
    return result.output, result.added


def test_old_tokens_keep_their_ids_and_old_texts_tokenise_as_before(extended, tiny_model_dir: Path) -> None:
    folder, added = extended
    old, new = AutoTokenizer.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(folder)
    assert len(added) == 24 and len(new) == len(old) + 24
    assert sorted(added.values()) == list(range(len(old), len(old) + 24))  # appended after every existing id
    new_vocab = new.get_vocab()
    assert all(new_vocab[token] == i for token, i in old.get_vocab().items())
    unchanged = 0
    for text in OLD_TEXTS:
        before, after = old.encode(text), new.encode(text)
        if after != before:  # allowed only where the text contains a new piece, which must then be used
            assert any(i >= len(old) for i in after), text
        unchanged += after == before
        assert new.decode(after) == text
    assert unchanged >= 3  # negative control for the loop above: most short texts do not contain new pieces


def test_domain_texts_use_the_new_pieces_and_round_trip(extended, tiny_model_dir: Path) -> None:
    folder, added = extended
    old, new = AutoTokenizer.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(folder)
    for text in set(DOMAIN):
        ids = new.encode(text)
        assert set(ids) & set(added.values())
        assert len(ids) < len(old.encode(text))
        assert new.decode(ids) == text


def test_non_bpe_tokenizers_are_refused(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    base = tmp_path / "wordpiece"
    base.mkdir()
    Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]")).save(str(base / "tokenizer.json"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("a a a\n")
    with pytest.raises(ConfigError, match=r"is a WordPiece tokenizer.*supports BPE tokenizers only"):
        extend_tokenizer(str(base), [str(corpus)], 4, str(tmp_path / "out"))


def test_cli_extends_and_says_how_to_train(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    corpus = tmp_path / "domain.txt"
    corpus.write_text("\n".join(DOMAIN), encoding="utf-8")
    args = ["tokenizer", "extend", "--base", str(tiny_model_dir), "--corpus", str(corpus), "--add", "5"]
    assert main([*args, "--output", str(tmp_path / "ext")]) == 0
    out = capsys.readouterr().out
    assert "added 5 pieces" in out and "modules_to_save=[embed_tokens,lm_head]" in out
    assert main([*args, "--output", str(tmp_path / "ext")]) != 0  # refuses to overwrite


def test_training_with_the_extended_tokenizer_learns_the_new_rows(extended, tiny_model_dir: Path, tmp_path) -> None:
    folder, added = extended
    method = {"name": "lora", "lora_rank": 4, "modules_to_save": ["embed_tokens", "lm_head"]}
    run = train_method(tmp_path, tiny_model_dir, method, 2e-2, steps=6, model={"tokenizer_name_or_path": str(folder)})
    embed = run.model.get_input_embeddings().weight  # the trained copy (modules_to_save)
    rows = sorted(added.values())
    assert embed.shape[0] == 512  # 504 tokens fit the 512 rows (the base vocabulary was padded to 64)
    base_rows = load_base_model(str(tiny_model_dir), torch.float32).get_input_embeddings().weight
    start = base_rows[:480].mean(dim=0)
    assert run.messages.count("initialised 24 new token rows (ids 480..503) to the mean of the base rows") == 1
    moved = (embed[rows].detach() - start).norm(dim=-1)
    assert (moved > 1e-2).sum() >= 3  # pieces that occur in the Q/A data trained away from the mean start
    assert torch.allclose(moved[moved <= 1e-2], torch.zeros(1), atol=1e-6)  # unseen ones sit exactly at the mean
    saved = json.loads((run.output_dir / "tokenizer_config.json").read_text())  # tokenizer saved with the adapter
    assert saved and len(AutoTokenizer.from_pretrained(run.output_dir)) == 480 + 24
    reloaded = attach_adapter(load_base_model(str(tiny_model_dir), torch.float32), str(run.output_dir))
    assert reloaded.get_input_embeddings().weight.shape[0] == embed.shape[0]
    batch = fixed_batch(504)
    batch["input_ids"][0, :3] = torch.tensor(rows[:3])  # new pieces in the input
    assert torch.allclose(logits(reloaded, batch), logits(run.model, batch), atol=1e-6, rtol=0)
    meta = export_merged(str(tiny_model_dir), str(run.output_dir), str(tmp_path / "merged"))
    merged = load_base_model(str(tmp_path / "merged"), torch.float32)
    assert torch.equal(merged.get_input_embeddings().weight[rows], embed[rows].detach())  # trained rows exported
    assert len(AutoTokenizer.from_pretrained(tmp_path / "merged")) == 504 and meta["merge_base"] == "original"
