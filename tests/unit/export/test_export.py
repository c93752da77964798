"""`lmforge export`: verified merge (negative controls), fresh-process reload, resized vocab, safety, atomicity."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lmforge.cli import main
from lmforge.export import export_merged
from lmforge.export import merge as merge_module
from lmforge.export.verify import ExportError, fixed_inputs, logits_of
from lmforge.models.adapters import attach_adapter, load_base_model
from lmforge.utils.errors import ConfigError
from tests.fixtures.adapters import NEW_TOKENS, build_lora_model

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".ckpt"}


def _adapter_logits(base: Path, adapter: Path, inputs: torch.Tensor) -> torch.Tensor:
    return logits_of(attach_adapter(load_base_model(str(base), torch.float32), str(adapter)), inputs)


def test_export_cli_merges_verifies_and_writes_safetensors_only(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "merged"
    argv = ["export", "--model", str(tiny_model_dir), "--adapter", str(lora_adapter_dir), "--output", str(out)]
    assert main(argv) == 0
    assert "merged_vs_unmerged" in capsys.readouterr().out
    meta = json.loads((out / "lmforge_export.json").read_text())
    assert meta["verification"]["merged_vs_unmerged"] <= 1e-4
    assert meta["verification"]["merged_vs_base"] > 1e-3
    assert meta["verification"]["written_vs_unmerged"] <= 1e-4
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "chat_template.jinja"} <= names
    assert not [n for n in names if Path(n).suffix in PICKLE_SUFFIXES]  # D16
    assert not list(tmp_path.glob(".merged.lmforge-*"))  # staging folder renamed away
    gen = json.loads((out / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert len(eos) > 0 and all(isinstance(i, int) for i in eos)


def test_merged_model_reloaded_in_fresh_process_gives_adapter_logits(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "merged"
    export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out))
    script = (
        "import sys, torch; from safetensors.torch import save_file; from transformers import AutoModelForCausalLM\n"
        "from lmforge.export.verify import fixed_inputs, logits_of\n"
        "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, use_safetensors=True).eval()\n"
        "save_file({'logits': logits_of(m, fixed_inputs(480))}, sys.argv[2])\n"
    )
    result = tmp_path / "logits.safetensors"
    subprocess.run([sys.executable, "-c", script, str(out), str(result)], check=True, capture_output=True)
    fresh = load_file(result)["logits"]
    expected = _adapter_logits(tiny_model_dir, lora_adapter_dir, fixed_inputs(480))
    diff = float((fresh - expected).abs().max())
    assert diff <= 1e-4, diff


def test_broken_merge_fails_loudly_and_writes_nothing(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative controls: the checks must catch a wrong scaling, a skipped merge and an adapter that does nothing."""
    from peft.tuners.tuners_utils import BaseTuner  # PeftModel.merge_and_unload forwards to its tuner

    real_merge = BaseTuner.merge_and_unload

    def merge_with_wrong_scaling(self: BaseTuner, *args: object, **kwargs: object) -> object:
        for module in self.modules():
            if hasattr(module, "scaling") and isinstance(module.scaling, dict):
                module.scaling = {name: value * 1.5 for name, value in module.scaling.items()}
        return real_merge(self, *args, **kwargs)

    out = tmp_path / "merged"
    monkeypatch.setattr(BaseTuner, "merge_and_unload", merge_with_wrong_scaling)
    with pytest.raises(ExportError, match="disagrees with the adapter model"):
        export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out))
    monkeypatch.setattr(BaseTuner, "merge_and_unload", lambda self, *a, **k: self.unload())
    with pytest.raises(ExportError, match="disagrees with the adapter model"):
        export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out))
    monkeypatch.undo()
    zero_model, tokenizer = build_lora_model(tiny_model_dir, zero_b=True)
    zero_adapter = tmp_path / "zero"
    zero_model.save_pretrained(zero_adapter)
    tokenizer.save_pretrained(zero_adapter)
    with pytest.raises(ExportError, match="equals the base model"):
        export_merged(str(tiny_model_dir), str(zero_adapter), str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zero"]


def test_adapter_with_resized_embeddings_round_trips_and_export_keeps_new_rows(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    peft_model, tokenizer = build_lora_model(tiny_model_dir, new_tokens=NEW_TOKENS)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    new_ids = tokenizer.convert_tokens_to_ids(list(NEW_TOKENS[:8]))
    inputs = torch.cat([fixed_inputs(len(tokenizer))[:, :16], torch.tensor([new_ids, new_ids[::-1]])], dim=1)
    reloaded = _adapter_logits(tiny_model_dir, adapter, inputs)
    assert float((reloaded - logits_of(peft_model, inputs)).abs().max()) <= 1e-6  # C12 round trip

    out = tmp_path / "merged"
    export_merged(str(tiny_model_dir), str(adapter), str(out))
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        embed = f.get_tensor("model.embed_tokens.weight")
    assert embed.shape[0] == peft_model.get_input_embeddings().weight.shape[0] == 576
    assert torch.equal(embed[512:], peft_model.get_input_embeddings().weight[512:].detach())
    merged = load_base_model(str(out), torch.float32)
    assert float((logits_of(merged, inputs) - reloaded).abs().max()) <= 1e-4
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(out)) == len(tokenizer) == 520


class _Marker:
    """A pickle that creates a file when unpickled: what a malicious .bin does (QUALITY D1)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (open, (str(self.path), "w"))


def _malicious_copy(src: Path, dst: Path, weights_name: str, marker: Path) -> Path:
    dst.mkdir()
    for item in src.iterdir():
        if not item.name.endswith(".safetensors"):
            (dst / item.name).write_bytes(item.read_bytes())
    (dst / weights_name).write_bytes(pickle.dumps(_Marker(marker)))
    return dst


@pytest.mark.parametrize("where, weights_name", [("adapter", "adapter_model.bin"), ("base", "pytorch_model.bin")])
def test_export_refuses_pickle_weights_naming_the_file(
    where: str, weights_name: str, tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    marker = Path(f"/tmp/pwned_{uuid.uuid4().hex}")
    src = lora_adapter_dir if where == "adapter" else tiny_model_dir
    bad = _malicious_copy(src, tmp_path / where, weights_name, marker)
    base, adapter = (tiny_model_dir, bad) if where == "adapter" else (bad, lora_adapter_dir)
    with pytest.raises(ConfigError, match=f"{weights_name}.*--allow-unsafe-pickle"):
        export_merged(str(base), str(adapter), str(tmp_path / "out"))
    with pytest.raises(Exception, match=r"(?i)weights_only|unpickl"):  # opted in: still weights_only=True
        export_merged(str(base), str(adapter), str(tmp_path / "out"), allow_unsafe_pickle=True)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_trusted_pickle_adapter_loads_when_opted_in(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for item in lora_adapter_dir.iterdir():
        if item.name != "adapter_model.safetensors":
            (adapter / item.name).write_bytes(item.read_bytes())
    torch.save(load_file(lora_adapter_dir / "adapter_model.safetensors"), adapter / "adapter_model.bin")
    meta = export_merged(str(tiny_model_dir), str(adapter), str(tmp_path / "out"), allow_unsafe_pickle=True)
    assert meta["verification"]["merged_vs_unmerged"] <= 1e-4


def test_failed_export_leaves_no_destination_and_rerun_completes(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "merged"
    real_write = merge_module.write_model

    def write_then_crash(model: object, tokenizer: object, folder: Path, shard_size: str) -> None:
        real_write(model, tokenizer, folder, shard_size)
        raise OSError("disk full")

    monkeypatch.setattr(merge_module, "write_model", write_then_crash)
    with pytest.raises(OSError, match="disk full"):
        export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".merged.lmforge-tmp").mkdir()  # what a SIGKILL mid-write leaves behind
    monkeypatch.undo()
    export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]


def test_existing_destination_is_refused_unless_overwrite(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "merged"
    export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out))
    (out / "stale.txt").write_text("x")
    with pytest.raises(ConfigError, match="already exists"):
        export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out))
    assert (out / "stale.txt").exists()
    export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out), dtype="bfloat16", overwrite=True)
    assert not (out / "stale.txt").exists()
    meta = json.loads((out / "lmforge_export.json").read_text())
    assert meta["dtype"] == "bfloat16" and meta["verification"]["written_vs_unmerged"] <= 2e-2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_overwrite_leaves_a_folder_that_is_not_an_export_untouched(
    tiny_model_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("years of work")
    with pytest.raises(ConfigError, match=r"not an lmforge export.*Nothing was deleted"):
        export_merged(str(tiny_model_dir), str(lora_adapter_dir), str(out), overwrite=True)
    assert _contents(out) == {"chapter1.tex": b"years of work"}


@pytest.mark.parametrize("flag", ["--model", "--adapter"])
def test_overwrite_refuses_to_replace_its_own_input(
    tiny_model_dir: Path, lora_adapter_dir: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tiny_model_dir if flag == "--model" else lora_adapter_dir
    before = _contents(target)
    args = ["export", "--model", str(tiny_model_dir), "--adapter", str(lora_adapter_dir)]
    assert main([*args, "--output", str(target), "--overwrite"]) == 2
    assert f"overlaps {flag}" in capsys.readouterr().err
    assert _contents(target) == before
