"""load_tokenizer / load_model: pad fix, new tokens and embedding resize, dtype, safety refusals (D1, D3, B12)."""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from pathlib import Path

import pytest
import torch

from lmforge.config.schema import ModelConfig
from lmforge.models import model_loading as loading
from lmforge.models.attention import PACKED_SDPA
from lmforge.models.model_loading import load_model, load_tokenizer, resolve_dtype
from lmforge.utils.errors import ConfigError
from tests.fixtures.tokenizers import load_fixture_tokenizer


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _save_tokenizer(tokenizer, folder: Path) -> Path:
    tokenizer.save_pretrained(folder)
    return folder


def test_missing_pad_token_uses_a_dedicated_pad_like_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _save_tokenizer(load_fixture_tokenizer("llama3", pad=False), tmp_path / "tok")
    with caplog.at_level(logging.INFO, logger="lmforge"):
        tokenizer = load_tokenizer(ModelConfig(name_or_path=str(folder)))
    assert tokenizer.pad_token == "<|finetune_right_pad_id|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert "no pad token" in caplog.text


def test_missing_pad_token_falls_back_to_eos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "PAD_CANDIDATES", ())
    folder = _save_tokenizer(load_fixture_tokenizer("qwen", pad=False), tmp_path / "tok")
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(folder)))
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"


def test_tokenizer_pads_on_the_right(tiny_model_dir: Path) -> None:
    assert load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir))).padding_side == "right"


def test_new_special_tokens_are_single_special_ids(tiny_model_dir: Path) -> None:
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), new_special_tokens=["<think>", "</think>"])
    tokenizer = load_tokenizer(cfg)
    ids = tokenizer("a<think>b</think>", add_special_tokens=False)["input_ids"]
    think, end = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    assert think >= 480 and end == think + 1 and think in ids and end in ids
    assert "<think>" not in tokenizer.decode(ids, skip_special_tokens=True)


def test_embeddings_grow_to_a_multiple_with_mean_rows(tiny_model_dir: Path) -> None:
    plain = ModelConfig(name_or_path=str(tiny_model_dir))
    base = load_model(plain, load_tokenizer(plain))
    new_tokens = [f"<extra_{i}>" for i in range(40)]  # 480 + 40 = 520 > 512 rows
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), new_special_tokens=new_tokens, resize_vocab_multiple=64)
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, tokenizer)
    for get in ("get_input_embeddings", "get_output_embeddings"):
        old, new = getattr(base, get)().weight, getattr(model, get)().weight
        assert new.shape[0] == 576 and model.config.vocab_size == 576
        assert torch.equal(new[:512], old)
        assert torch.equal(new[512:], old.mean(dim=0, keepdim=True).expand(64, -1))


def test_embedding_rows_of_a_zero3_shard_come_from_its_full_shape() -> None:
    """ZeRO-3 leaves each rank an empty local tensor; its 0 rows made the resize average nothing into NaN."""
    shard = torch.nn.Parameter(torch.empty(0))
    shard.ds_shape = torch.Size([512, 32])  # what deepspeed.zero.Init records for the whole matrix
    assert loading.embedding_rows(shard) == 512
    assert loading.embedding_rows(torch.zeros(7, 3)) == 7


def test_no_resize_when_the_tokenizer_fits(tiny_model_dir: Path) -> None:
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), new_special_tokens=["<x>"])
    model = load_model(cfg, load_tokenizer(cfg))
    assert model.get_input_embeddings().weight.shape[0] == 512


def test_model_is_ready_to_train(tiny_model_dir: Path) -> None:
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), gradient_checkpointing=True)
    model = load_model(cfg, load_tokenizer(cfg))
    assert model.config.use_cache is False
    assert model.config._attn_implementation == PACKED_SDPA  # "sdpa" that attends per packed sample
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


@pytest.mark.parametrize(
    ("name", "expected"), [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)]
)
def test_explicit_dtype_is_the_weights_dtype(tiny_model_dir: Path, name: str, expected: torch.dtype) -> None:
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), dtype=name)
    assert {p.dtype for p in load_model(cfg, load_tokenizer(cfg)).parameters()} == {expected}


def test_auto_dtype_is_bf16_only_on_a_bf16_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_dtype("auto") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_dtype("auto") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_dtype("auto") == torch.bfloat16


def _evil_model_dir(src: Path, dst: Path, marker: Path) -> Path:
    """A model folder whose config's auto_map points at code that writes `marker` when imported (QUALITY D3)."""
    folder = _copy(src, dst)
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil"  # unknown to transformers, so only the folder's code could load it
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilLM"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("what", ["tokenizer", "model"])
def test_remote_code_is_refused_and_never_runs(tiny_model_dir: Path, tmp_path: Path, what: str) -> None:
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    cfg = ModelConfig(name_or_path=str(_evil_model_dir(tiny_model_dir, tmp_path / "evil", marker)))
    with pytest.raises(ConfigError, match=r"modeling_evil\.py.*trust_remote_code: true"):
        load_tokenizer(cfg) if what == "tokenizer" else load_model(cfg, load_fixture_tokenizer("qwen"))
    assert not marker.exists()


def test_transformers_remote_code_error_is_reworded(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second line of defence (hub ids): transformers' own refusal becomes a ConfigError; the code never runs."""
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    cfg = ModelConfig(name_or_path=str(_evil_model_dir(tiny_model_dir, tmp_path / "evil", marker)))
    monkeypatch.setattr(loading, "check_remote_code", lambda model_cfg: None)
    with pytest.raises(ConfigError, match="needs custom Python code"):
        load_model(cfg, load_fixture_tokenizer("qwen"))
    assert not marker.exists()


def test_trusted_remote_code_is_announced_with_hashes(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "marker"
    folder = _evil_model_dir(tiny_model_dir, tmp_path / "evil", marker)
    with caplog.at_level(logging.WARNING, logger="lmforge"):
        loading.check_remote_code(ModelConfig(name_or_path=str(folder), trust_remote_code=True))
    assert "modeling_evil.py (sha256 " in caplog.text


class _Pwn:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # a pickle that would create the marker when loaded
        return (open, (str(self.marker), "w"))


def test_pickle_weights_are_refused_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    folder = _copy(tiny_model_dir, tmp_path / "pickled")
    (folder / "model.safetensors").unlink()
    torch.save({"x": _Pwn(marker)}, folder / "pytorch_model.bin")
    cfg = ModelConfig(name_or_path=str(folder))
    with pytest.raises(ConfigError, match=r"pytorch_model\.bin.*safetensors only"):
        load_model(cfg, load_tokenizer(cfg))
    assert not marker.exists()


def test_missing_local_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_tokenizer(ModelConfig(name_or_path=str(tmp_path / "nope")))


def test_uncached_hub_id_fails_fast_when_the_hub_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "_hub_reachable", lambda endpoint: False)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="not in the Hugging Face cache"):
        load_tokenizer(ModelConfig(name_or_path=f"lmforge-tests/missing-{uuid.uuid4().hex[:8]}"))
    assert time.monotonic() - start < 30


def test_cached_hub_model_is_used_offline_when_the_hub_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(loading, "_hub_reachable", lambda endpoint: False)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kw: "/cache/config.json")
    assert loading._hub_kwargs(ModelConfig(name_or_path="org/model")) == {"local_files_only": True}
