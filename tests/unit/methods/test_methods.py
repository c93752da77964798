"""prepare_model: exactly the intended parameters train, and training moves them and nothing else."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lmforge.config.methods import METHOD_SPECS
from lmforge.config.schema import METHODS as SCHEMA_METHODS
from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.methods import count_parameters, format_parameter_count, prepare_model
from lmforge.models.model_loading import load_model, load_tokenizer
from lmforge.utils.errors import ConfigError

from .helpers import changed, prepared, snapshot, train_steps, trainable_names

LAYER_PARAMS = {
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
}


def _layer(index: int, names: set[str] = LAYER_PARAMS) -> set[str]:
    return {f"model.layers.{index}.{n}" for n in names}


def test_method_table_lists_the_methods() -> None:
    assert set(METHOD_SPECS) == set(SCHEMA_METHODS)  # the method table and the config schema agree
    with pytest.raises(ConfigError, match=r'did you mean "qlora".*valid: full, freeze, lora, qlora'):
        prepare_model(None, MethodConfig(name="qlora2"), ModelConfig())


def test_full_trains_everything(tiny_model_dir: Path) -> None:
    model = prepared(tiny_model_dir, MethodConfig(name="full"))
    all_names = {n for n, _ in model.named_parameters()}
    assert trainable_names(model) == all_names
    before = snapshot(model)
    train_steps(model)
    assert changed(before, model) == all_names


def test_full_keeps_fp32_master_weights(tiny_model_dir: Path) -> None:
    model = prepared(tiny_model_dir, MethodConfig(name="full"), dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize(("layers", "index"), [(1, 1), (-1, 0)])
def test_freeze_trains_the_chosen_layer_only(tiny_model_dir: Path, layers: int, index: int) -> None:
    model = prepared(tiny_model_dir, MethodConfig(name="freeze", freeze_trainable_layers=layers))
    assert trainable_names(model) == _layer(index)
    before = snapshot(model)
    train_steps(model)
    assert changed(before, model) == _layer(index)  # frozen ones are bitwise unchanged


def test_freeze_sub_modules_and_extra_modules(tiny_model_dir: Path) -> None:
    method = MethodConfig(
        name="freeze",
        freeze_trainable_layers=2,
        freeze_trainable_modules=["mlp", "q_proj"],
        freeze_extra_modules=["embed_tokens", "model.norm"],
    )
    model = prepared(tiny_model_dir, method, dtype="bfloat16")
    inner = {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", "self_attn.q_proj.weight"}
    expected = _layer(0, inner) | _layer(1, inner) | {"model.embed_tokens.weight", "model.norm.weight"}
    assert trainable_names(model) == expected
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert {dtypes[n] for n in expected} == {torch.float32}  # trainable upcast, frozen left in bf16
    assert dtypes["lm_head.weight"] == torch.bfloat16


def test_freeze_tied_head_trains_with_embeddings(tiny_qwen2_dir: Path) -> None:
    method = MethodConfig(name="freeze", freeze_trainable_layers=0, freeze_extra_modules=["lm_head"])
    model = prepared(tiny_qwen2_dir, method)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert trainable_names(model) == {"model.embed_tokens.weight"}  # one shared tensor, listed once


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("freeze_trainable_modules", ["mlpp"], r"no module named 'mlpp' inside a layer; available: .*mlp.*q_proj"),
        ("freeze_extra_modules", ["lm_heads"], r"no module named 'lm_heads'; available: .*embed_tokens.*lm_head"),
        ("freeze_trainable_layers", 3, "only 2 layers"),
    ],
)
def test_freeze_bad_names_list_what_exists(tiny_model_dir: Path, field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        prepared(tiny_model_dir, MethodConfig(name="freeze", **{field: value}))


def _lora_names(modules: set[str]) -> set[str]:
    return {
        f"base_model.model.model.layers.{i}.{m}.lora_{ab}.default.weight"
        for i in range(2)
        for m in modules
        for ab in "AB"
    }


ALL_LINEAR = {f"self_attn.{p}_proj" for p in "qkvo"} | {f"mlp.{p}_proj" for p in ("gate", "up", "down")}


def test_lora_all_targets_every_linear_but_the_head(tiny_model_dir: Path) -> None:
    model = prepared(tiny_model_dir, MethodConfig(name="lora", lora_rank=4))
    assert trainable_names(model) == _lora_names(ALL_LINEAR)
    config = model.peft_config["default"]
    assert config.lora_alpha == 8 and config.r == 4  # alpha defaults to 2 x rank
    # r x (in + out) per adapted linear: q,k,v,o are 64x64; gate/up 64->128; down 128->64
    per_layer = 4 * 4 * (64 + 64) + 3 * 4 * (64 + 128)
    assert count_parameters(model)[0] == 2 * per_layer
    before = snapshot(model)
    train_steps(model)
    assert changed(before, model) == _lora_names(ALL_LINEAR)


def test_lora_named_targets_and_modules_to_save(tiny_model_dir: Path) -> None:
    method = MethodConfig(name="lora", lora_target=["q_proj", "v_proj"], modules_to_save=["lm_head"])
    model = prepared(tiny_model_dir, method)
    head = {"base_model.model.lm_head.modules_to_save.default.weight"}
    assert trainable_names(model) == _lora_names({"self_attn.q_proj", "self_attn.v_proj"}) | head
    before = snapshot(model)
    train_steps(model)
    assert changed(before, model) == trainable_names(model)


def test_lora_unknown_target_lists_linear_layers(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"no linear layer named 'qproj'; available: all, down_proj.*v_proj"):
        prepared(tiny_model_dir, MethodConfig(name="lora", lora_target=["qproj"]))


def test_lora_continues_from_a_saved_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    trained = prepared(tiny_model_dir, MethodConfig(name="lora"))
    train_steps(trained)
    adapter = tmp_path / "adapter"
    trained.save_pretrained(adapter)
    resumed = prepared(tiny_model_dir, MethodConfig(name="lora", lora_rank=2), adapter_name_or_path=str(adapter))
    saved = {n: p for n, p in trained.named_parameters() if p.requires_grad}
    assert trainable_names(resumed) == set(saved)  # the adapter's own rank (8), not the config's 2
    for name, param in resumed.named_parameters():
        if param.requires_grad:
            assert torch.equal(param, saved[name])


def test_lora_refuses_a_pickle_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    prepared(tiny_model_dir, MethodConfig(name="lora")).save_pretrained(folder)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    with pytest.raises(ConfigError, match=r"adapter_model\.bin.*refused"):
        prepared(tiny_model_dir, MethodConfig(name="lora"), adapter_name_or_path=str(folder))


def test_parameter_count_is_logged(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = ModelConfig(name_or_path=str(tiny_model_dir))
    model = load_model(cfg, load_tokenizer(cfg))
    total = sum(p.numel() for p in model.parameters())
    layer = sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.layers.1."))
    with caplog.at_level(logging.INFO, logger="lmforge"):
        prepare_model(model, MethodConfig(name="freeze", freeze_trainable_layers=1), cfg)
    assert count_parameters(model) == (layer, total)
    assert format_parameter_count(layer, total) in caplog.text
    assert format_parameter_count(1, 4) == "trainable params: 1 || all params: 4 || trainable%: 25.0000"


def test_checkpointing_with_frozen_embeddings_still_gets_gradients(tiny_model_dir: Path) -> None:
    model = prepared(tiny_model_dir, MethodConfig(name="lora"), gradient_checkpointing=True)
    before = snapshot(model)
    train_steps(model, steps=2)
    assert changed(before, model)
