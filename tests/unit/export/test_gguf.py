"""`lmforge export --format gguf`: every type reloads with the merged model's logits (transformers' GGUF loader),
negative controls for the q/k permutation, the pre-tokenizer name and the Modelfile template, atomic output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import pytest
import yaml

from lmforge.cli import main
from lmforge.export import gguf_tokenizer
from lmforge.export.gguf_export import export_gguf
from lmforge.export.gguf_file import GGUF_TYPES
from lmforge.export.gguf_verify import LAYOUT_TOLERANCE, QUANT_TOLERANCE
from lmforge.export.modelfile import check_pieces, derive_pieces, render_pieces, training_system_prompt
from lmforge.export.verify import ExportError
from lmforge.templates import get_template
from lmforge.utils.errors import ConfigError
from tests.fixtures.models import save_tiny_model
from tests.fixtures.tokenizers import load_fixture_tokenizer

FILE_TYPES = {"f32": {"F32"}, "f16": {"F16", "F32"}, "bf16": {"BF16", "F32"}, "q8_0": {"Q8_0", "F32"}}


def _fields(path: Path) -> dict[str, Any]:
    """GGUF metadata as plain values, read back with the gguf package's reader."""
    return {name: field.contents() for name, field in gguf.GGUFReader(str(path)).fields.items()}


def _gguf_file(folder: Path) -> Path:
    (path,) = folder.glob("*.gguf")
    return path


@pytest.mark.parametrize("gguf_type", GGUF_TYPES)
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_every_gguf_type_reloads_with_the_merged_logits(
    arch: str, gguf_type: str, tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    model_dir = tiny_model_dir if arch == "llama" else tiny_qwen2_dir  # qwen2 fixture: tied embeddings
    meta = export_gguf(str(model_dir), str(tmp_path / "out"), gguf_type)
    numbers = meta["verification"]
    assert numbers["gguf_vs_rounded"] <= LAYOUT_TOLERANCE
    assert numbers["gguf_vs_merged"] <= QUANT_TOLERANCE[gguf_type]
    assert numbers["tokenizer_probes"] >= 6 and numbers["greedy_prompts"] == 3
    if gguf_type in ("f32", "f16"):
        assert numbers["greedy_same_as_merged"] == 3
    assert set(meta["tensor_types"]) == FILE_TYPES.get(gguf_type, {"Q4_0", "Q8_0", "F32"})
    path = _gguf_file(tmp_path / "out")
    assert _fields(path)["general.architecture"] == arch
    tensors = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    assert ("output.weight" in tensors) == (arch == "llama")  # a tied head is written once, as token_embd


def test_unpermuted_qk_fails_verification_and_leaves_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Negative control: llama q/k rows in HF's rotate-half layout must be caught, at f32 and at q4_0."""
    for gguf_type in ("f32", "q4_0"):
        with pytest.raises(ExportError, match="mis-permuted"):
            export_gguf(str(tiny_model_dir), str(tmp_path / "out"), gguf_type, permute=False)
    assert list(tmp_path.iterdir()) == []  # no destination, no staging folder


def _tiny_config_model(folder: Path, model_type: str) -> Path:
    """A random tiny model of an architecture without a fixture, with the Qwen (ChatML) fixture tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = load_fixture_tokenizer("qwen")
    dims = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
    extra = {
        "mistral": {"num_key_value_heads": 2},
        "qwen3": {"num_key_value_heads": 2, "head_dim": 128},  # transformers' GGUF loader assumes the default
        "phi3": {"num_key_value_heads": 4, "pad_token_id": tokenizer.pad_token_id},
        "gemma2": {"num_key_value_heads": 2, "head_dim": 256, "query_pre_attn_scalar": 256},
    }[model_type]
    config = AutoConfig.for_model(model_type, vocab_size=512, **dims, **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # norms away from their constant init, so a wrong norm transform shows in the logits
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_type", ["mistral", "qwen3", "phi3", "gemma2"])
def test_other_architectures_export_verified(model_type: str, tmp_path: Path) -> None:
    model_dir = _tiny_config_model(tmp_path / "model", model_type)
    meta = export_gguf(str(model_dir), str(tmp_path / "out"), "q8_0")
    assert meta["verification"]["gguf_vs_rounded"] <= LAYOUT_TOLERANCE
    arch = {"mistral": "llama"}.get(model_type, model_type)
    assert _fields(_gguf_file(tmp_path / "out"))["general.architecture"] == arch


def test_cli_exports_adapter_with_metadata_and_modelfile(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gguf"
    argv = ["export", "--model", str(tiny_model_dir), "--adapter", str(lora_adapter_dir), "--output", str(out)]
    assert main([*argv, "--format", "gguf", "--gguf-type", "q8_0", "--system", "You are Forge."]) == 0
    assert "Modelfile" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"gguf.q8_0.gguf", "Modelfile", "lmforge_export.json"}
    fields = _fields(out / "gguf.q8_0.gguf")
    tokenizer = load_fixture_tokenizer("qwen")
    assert fields["general.base_model.0.name"] == str(tiny_model_dir)
    assert fields["general.lmforge.adapter"] == str(lora_adapter_dir)
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "llama-bpe"  # the fixture splits with Llama-3's regex
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert fields["tokenizer.ggml.padding_token_id"] == tokenizer.pad_token_id
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert fields["tokenizer.ggml.tokens"][-1] == "[PAD511]"  # 480 tokens, 512 embedding rows
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith('FROM ./gguf.q8_0.gguf\nTEMPLATE """')
    assert 'SYSTEM """You are Forge."""' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "<|im_start|>assistant\n" in modelfile


def test_llama3_file_has_eot_and_bos_and_stops_on_both(tmp_path: Path) -> None:
    model_dir = save_tiny_model(tmp_path / "m", "llama", load_fixture_tokenizer("llama3"))
    export_gguf(str(model_dir), str(tmp_path / "out"), "f16")
    tokenizer = load_fixture_tokenizer("llama3")
    fields = _fields(_gguf_file(tmp_path / "out"))
    assert fields["tokenizer.ggml.eot_token_id"] == tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert fields["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
    assert fields["tokenizer.ggml.add_bos_token"] is True
    modelfile = (tmp_path / "out" / "Modelfile").read_text()
    assert 'PARAMETER stop "<|eot_id|>"' in modelfile
    assert "<|begin_of_text|>" not in modelfile  # llama.cpp adds BOS itself


@pytest.mark.parametrize("family", ["qwen", "llama3", "mistral", "gemma"])
def test_modelfile_template_reproduces_training_prompts(family: str) -> None:
    tokenizer = load_fixture_tokenizer(family)
    template = get_template("auto", tokenizer)
    bos_added = gguf_tokenizer.adds_bos(tokenizer)
    pieces = derive_pieces(template, tokenizer, bos_added)
    assert check_pieces(pieces, template, tokenizer, bos_added) == 4


def test_modelfile_check_catches_a_wrong_piece() -> None:
    """Negative control: a template that drops the separator between turns must be refused."""
    import dataclasses

    tokenizer = load_fixture_tokenizer("qwen")
    template = get_template("auto", tokenizer)
    pieces = dataclasses.replace(derive_pieces(template, tokenizer, False), between="")
    with pytest.raises(ExportError, match="does not reproduce"):
        check_pieces(pieces, template, tokenizer, False)
    assert render_pieces(pieces, [{"role": "user", "content": "x"}]).endswith("<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def init_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An `lmforge init-model` qwen2 model: its own BPE vocabulary, whose hash llama.cpp's converter does not know."""
    from lmforge.models.init import init_model

    folder = tmp_path_factory.mktemp("init") / "model"
    init_model(output=str(folder), arch="qwen2", size="tiny", corpus=[], template="chatml", seed=0)
    return folder


def test_init_model_vocabulary_gets_the_pre_tokenizer_of_its_split_regex(init_model_dir: Path, tmp_path: Path) -> None:
    meta = export_gguf(str(init_model_dir), str(tmp_path / "out"), "q8_0")
    assert meta["verification"]["tokenizer_probes"] >= 6
    assert _fields(_gguf_file(tmp_path / "out"))["tokenizer.ggml.pre"] == "qwen2"


def test_wrong_pre_tokenizer_name_fails_the_tokenizer_round_trip(
    init_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: declaring GPT-2's split for a Qwen2-regex vocabulary must fail on the probe corpus."""
    monkeypatch.setattr(gguf_tokenizer, "pre_tokenizer_name", lambda spec: "gpt2")
    with pytest.raises(ExportError, match="tokenizer check failed"):
        export_gguf(str(init_model_dir), str(tmp_path / "out"), "q8_0")
    assert list(tmp_path.iterdir()) == []


def test_unknown_split_regex_is_refused_with_a_clear_message() -> None:
    spec = {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "[a-z]+"}, "behavior": "Isolated"},
        {"type": "ByteLevel", "use_regex": False},
    ]}}  # fmt: skip
    with pytest.raises(ConfigError, match="no pre-tokenizer"):
        gguf_tokenizer.pre_tokenizer_name(spec)
    assert gguf_tokenizer.pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel"}}) == "gpt2"


def test_existing_destination_needs_overwrite(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        export_gguf(str(tiny_model_dir), str(tmp_path / "out"), "f16")


def test_safetensors_export_still_requires_an_adapter(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", "--model", str(tiny_model_dir), "--output", str(tmp_path / "o")]) == 2
    assert "needs --adapter" in capsys.readouterr().err


def test_k_quants_without_llama_cpp_say_how_to_get_it(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmforge.export import gguf_llamacpp

    monkeypatch.setattr(gguf_llamacpp, "installed", lambda: False)
    with pytest.raises(ConfigError, match=r"lmforge\[llamacpp\]"):
        export_gguf(str(tiny_model_dir), str(tmp_path / "out"), "q4_k_m")
    assert not (tmp_path / "out").exists()


def _run_dir(tmp_path: Path, systems: list[str | None]) -> Path:
    rows = [
        {"messages": ([{"role": "system", "content": sys}] if sys else [])
         + [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i, sys in enumerate(systems)
    ]  # fmt: skip
    tmp_path.mkdir(parents=True)
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    config = {"stage": "sft", "model": {"name_or_path": str(tmp_path)}, "train": {"output_dir": str(run)}}
    config["data"] = {"datasets": [{"path": str(data), "format": "openai"}]}
    (run / "lmforge_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return run


def test_modelfile_system_comes_from_the_training_data_when_most_rows_share_one(tmp_path: Path) -> None:
    assert training_system_prompt(str(_run_dir(tmp_path / "a", ["Be Forge."] * 3 + [None]))) == "Be Forge."
    assert training_system_prompt(str(_run_dir(tmp_path / "b", ["One.", "Two.", None, None]))) is None  # no majority
    assert training_system_prompt(str(_run_dir(tmp_path / "c", [None, None]))) is None
    moved = _run_dir(tmp_path / "d", ["Be Forge."])
    (tmp_path / "d" / "chat.jsonl").unlink()  # data gone: no SYSTEM line, a warning, never a failed export
    assert training_system_prompt(str(moved)) is None
