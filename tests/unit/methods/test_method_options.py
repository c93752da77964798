"""Cross-method options and their config rules: NEFTune per-sample noise, LoRA+ groups, optional optimizer and
quantisation packages, freeze patterns, and the rules that refuse options a method does not read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lmforge.config import checks
from lmforge.config.config_loading import build_dataclass
from lmforge.config.schema import MethodConfig, ModelConfig, RunConfig
from lmforge.methods.lora import loraplus_optimizer
from lmforge.methods.neftune import NeftuneHook, add_neftune, sample_lengths
from lmforge.models import quantization
from lmforge.utils.errors import ConfigError

from .helpers import prepared, trainable_names


def make(method: dict, data: dict | None = None, train: dict | None = None) -> RunConfig:
    raw = {
        "model": {"name_or_path": "m"},
        "data": {"datasets": ["d"], **(data or {})},
        "method": method,
        "train": {"output_dir": "out", **(train or {})},
    }
    return build_dataclass(RunConfig, raw, where="")


@pytest.mark.parametrize(
    ("rule", "cfg", "message"),
    [
        (
            checks.check_method_options_apply,
            make({"name": "lora", "quant_bits": 8}),
            "method.quant_bits is set but method.name is 'lora'; it applies to qlora",
        ),
        (
            checks.check_method_options_apply,
            make({"name": "ia3", "lora_use_dora": True}),
            "lora_use_dora is set but method.name is 'ia3'; it applies to lora, qlora",
        ),
        (
            checks.check_method_options_apply,
            make({"name": "lora", "prompt_virtual_tokens": 4}),
            "applies to prompt_tuning, p_tuning, prefix_tuning",
        ),
        (
            checks.check_method_values,
            make({"name": "adalora", "lora_rank": 4, "adalora_target_rank": 4}),
            r"adalora_target_rank \(4\) must be between 1 and method.lora_rank - 1 \(3\)",
        ),
        (
            checks.check_prompt_methods_padded,
            make({"name": "prefix_tuning"}),
            "set data.padding_free: false",
        ),
        (
            checks.check_prompt_methods_padded,
            make({"name": "prompt_tuning"}, data={"padding_free": False, "packing": True}),
            "data.packing: false",
        ),
        (
            checks.check_optimizer_installed,
            make({"name": "full"}, train={"optim": "apollo_adamw", "optim_target_modules": ["mlp"]}),
            r"apollo-torch package, which is not installed \(pip install apollo-torch\)",
        ),
        (
            checks.check_optimizer_installed,
            make({"name": "full"}, train={"optim": "galore_adamw"}),
            "needs train.optim_target_modules",
        ),
    ],
)
def test_method_rules_reject_bad_combinations(rule, cfg: RunConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rule(cfg)


def test_method_rules_accept_matching_options() -> None:
    for cfg in (
        make({"name": "qlora", "quant_bits": 8, "lora_use_dora": True, "loraplus_lr_ratio": 16}),
        make({"name": "p_tuning", "prompt_encoder": "lstm"}, data={"padding_free": False}),
        make({"name": "adalora", "lora_rank": 8, "adalora_target_rank": 2}),
        make({"name": "full"}, train={"optim": "galore_adamw", "optim_target_modules": ["mlp"]}),
    ):
        checks.check_config(cfg)


def test_sample_lengths_follow_restarting_positions() -> None:
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3, 4]])
    assert sample_lengths(positions.shape, positions).tolist() == [[3, 3, 3, 2, 2, 5, 5, 5, 5, 5]]
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert sample_lengths(mask.shape, None, mask).tolist() == [[3, 3, 3, 3], [4, 4, 4, 4]]
    assert sample_lengths(torch.Size([1, 6])).tolist() == [[6] * 6]


class _Tiny(nn.Module):
    """An embedding-only 'model' whose forward returns the embeddings, to observe the noise directly."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, dim)
        nn.init.zeros_(self.embed.weight)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.embed(input_ids)


def test_neftune_noise_is_scaled_per_sample_and_off_in_eval() -> None:
    dim, alpha = 4096, 5.0
    model = _Tiny(dim)
    add_neftune(model, alpha)
    ids = torch.zeros(1, 100, dtype=torch.long)
    positions = torch.tensor([list(range(10)) + list(range(90))])  # a 10-token and a 90-token sample in one row
    noise = model(input_ids=ids, position_ids=positions)
    # uniform(-m, m) has max |x| -> m over many draws: per sample m = alpha / sqrt(L * d)
    for part, length in ((noise[0, :10], 10), (noise[0, 10:], 90)):
        bound = alpha / (length * dim) ** 0.5
        assert part.abs().max() <= bound
        assert part.abs().max() > 0.99 * bound
        assert abs(part.abs().mean().item() - bound / 2) < 0.02 * bound
    # negative control: the whole-row scaling transformers uses would give the 10-token sample sqrt(10) less noise
    assert noise[0, :10].abs().max() > 2 * alpha / (100 * dim) ** 0.5
    model.eval()
    assert torch.equal(model(input_ids=ids, position_ids=positions), torch.zeros(1, 100, dim))


def test_neftune_hook_uses_the_attention_mask_of_padded_rows() -> None:
    hook = NeftuneHook(alpha=4.0)
    embed = nn.Embedding(3, 1024)
    nn.init.zeros_(embed.weight)
    hook._batch = {"attention_mask": torch.tensor([[1] * 16 + [0] * 48])}
    out = hook.add_noise(embed, (), embed(torch.zeros(1, 64, dtype=torch.long)))
    assert out.abs().max() <= 4.0 / (16 * 1024) ** 0.5
    assert out.abs().max() > 0.9 * 4.0 / (16 * 1024) ** 0.5


def test_neftune_in_a_run_config_prepares(tiny_model_dir: Path) -> None:
    model = prepared(tiny_model_dir, MethodConfig(name="lora", lora_rank=2, neftune_alpha=5.0))
    ids = torch.randint(0, 400, (1, 8))
    model.eval()
    clean = model(input_ids=ids).logits
    assert torch.equal(model(input_ids=ids).logits, clean)
    model.train()
    assert not torch.equal(model(input_ids=ids).logits, clean)


def test_loraplus_gives_b_a_larger_learning_rate(tiny_model_dir: Path) -> None:
    from transformers import TrainingArguments

    model = prepared(tiny_model_dir, MethodConfig(name="lora", lora_rank=2, loraplus_lr_ratio=16.0))
    args = TrainingArguments(output_dir="unused", learning_rate=1e-4, weight_decay=0.0, report_to="none")
    optimizer, scheduler = loraplus_optimizer(MethodConfig(name="lora", loraplus_lr_ratio=16.0), model, args)
    assert scheduler is None
    by_lr: dict[float, set[str]] = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        by_lr.setdefault(round(group["lr"], 9), set()).update(names[id(p)] for p in group["params"])
    assert {n.split(".")[-3] for n in by_lr[1e-4]} == {"lora_A"}
    assert {n.split(".")[-3] for n in by_lr[1.6e-3]} == {"lora_B"}
    assert set().union(*by_lr.values()) == trainable_names(model)
    assert loraplus_optimizer(MethodConfig(name="lora"), model, args) == (None, None)  # default: Trainer's own


def test_qlora_without_bitsandbytes_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantization, "bitsandbytes_available", lambda: False)
    with pytest.raises(ConfigError, match=r"qlora needs the bitsandbytes package.*pip install 'lmforge\[qlora\]'"):
        quantization.quantization_config(MethodConfig(name="qlora"), ModelConfig(name_or_path="m"))
    assert quantization.quantization_config(MethodConfig(name="lora"), ModelConfig()) is None  # lora never needs it


def test_quantization_config_follows_the_options() -> None:
    q4 = quantization.quantization_config(
        MethodConfig(name="qlora", quant_type="fp4", quant_double=False, quant_compute_dtype="bfloat16"), ModelConfig()
    )
    assert (q4.load_in_4bit, q4.bnb_4bit_quant_type, q4.bnb_4bit_use_double_quant) == (True, "fp4", False)
    assert q4.bnb_4bit_compute_dtype == torch.bfloat16
    q8 = quantization.quantization_config(MethodConfig(name="qlora", quant_bits=8), ModelConfig())
    assert q8.load_in_8bit and not q8.load_in_4bit


def test_loftq_on_cpu_is_a_clear_error(tiny_model_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: LoftQ runs")
    with pytest.raises(ConfigError, match="loftq needs a CUDA GPU"):
        prepared(tiny_model_dir, MethodConfig(name="lora", lora_init="loftq"))


def test_freeze_patterns_add_matching_parameters(tiny_model_dir: Path) -> None:
    method = MethodConfig(
        name="freeze", freeze_trainable_layers=-1, freeze_trainable_patterns=["model.layers.1.mlp.down_proj.*"]
    )
    names = trainable_names(prepared(tiny_model_dir, method))
    assert "model.layers.1.mlp.down_proj.weight" in names
    assert {n for n in names if n.startswith("model.layers.1.")} == {"model.layers.1.mlp.down_proj.weight"}
    assert all(n.startswith(("model.layers.0.", "model.layers.1.mlp.down_proj")) for n in names)
    with pytest.raises(ConfigError, match=r"'layers\.9\.\*' matches no parameter name"):
        prepared(tiny_model_dir, MethodConfig(name="freeze", freeze_trainable_patterns=["layers.9.*"]))


@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_quantizes_the_base_and_trains_only_lora(tiny_model_dir: Path, bits: int) -> None:
    import bitsandbytes as bnb

    from lmforge.methods import prepare_model
    from lmforge.models.model_loading import load_model, load_tokenizer

    torch.use_deterministic_algorithms(False)  # bitsandbytes' CPU kernels
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32")
    method = MethodConfig(name="qlora", quant_bits=bits, lora_rank=2)
    model = prepare_model(load_model(cfg, load_tokenizer(cfg), method), method, cfg)
    layer = {4: bnb.nn.Linear4bit, 8: bnb.nn.Linear8bitLt}[bits]
    assert sum(isinstance(m, layer) for m in model.modules()) == 14
    assert all(".lora_" in n for n in trainable_names(model))
    ids = torch.randint(0, 400, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_dequantized_weights_are_the_quantised_values_in_fp32(tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    from lmforge.models.model_loading import load_model, load_tokenizer

    torch.use_deterministic_algorithms(False)
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32")
    quantized = load_model(cfg, load_tokenizer(cfg), MethodConfig(name="qlora"))
    weights = quantization.dequantized_weights(quantized)
    original = load_file(str(tiny_model_dir / "model.safetensors"))
    assert len(weights) == 14 and all(w.dtype == torch.float32 for w in weights.values())
    for name, weight in weights.items():
        error = (weight - original[name]).abs()
        assert error.max() > 0  # negative control: quantisation did change the values
        assert error.max() <= 0.2 * original[name].abs().max()  # nf4: 16 levels per block of 64
        assert len(torch.unique(weight.reshape(-1, 64)[0])) <= 16  # one block holds at most 16 distinct values


def test_qlora_eval_forward_works_for_widths_off_the_block_size(tmp_path: Path) -> None:
    """bitsandbytes' CPU eval path would repack the weights and fail for in_features % 64 != 0 (MLP of 96 here);
    load_model keeps them unpacked, so eval runs and dequantising afterwards still reads the trained weights."""
    from lmforge.models.init import build_model
    from lmforge.models.model_loading import load_model, load_tokenizer
    from tests.fixtures.tokenizers import load_fixture_tokenizer

    torch.use_deterministic_algorithms(False)
    tokenizer = load_fixture_tokenizer("qwen")
    dims = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 96}
    build_model("llama", tokenizer, 0, **dims).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cfg = ModelConfig(name_or_path=str(tmp_path), dtype="float32")
    model = load_model(cfg, load_tokenizer(cfg), MethodConfig(name="qlora")).eval()
    before = quantization.dequantized_weights(model)
    with torch.no_grad():
        model(input_ids=torch.randint(0, 400, (1, 6)))
    after = quantization.dequantized_weights(model)
    assert all(torch.equal(before[n], after[n]) for n in before)


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("lora_use_droa", "lora_use_dora"),
        ("quant_bit", "quant_bits"),
        ("prompt_virtual_token", "prompt_virtual_tokens"),
    ],
)
def test_misspelt_method_keys_get_a_did_you_mean(key: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown config key 'method.{key}' \\(did you mean \"{hint}\"\\?\\)"):
        make({"name": "lora", key: 1})
