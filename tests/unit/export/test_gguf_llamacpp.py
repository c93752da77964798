"""GGUF files run by llama.cpp itself (llama-cpp-python, extra `lmforge[llamacpp]`): skipped when not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.export.gguf_arch import arch_for
from lmforge.export.gguf_export import export_gguf
from lmforge.export.gguf_file import Provenance, write_gguf
from lmforge.export.gguf_verify import check_llamacpp
from lmforge.export.verify import ExportError
from lmforge.models.adapters import load_base_model, load_plain_tokenizer
from lmforge.models.init import build_model
from lmforge.templates import get_template
from tests.fixtures.tokenizers import load_fixture_tokenizer

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def k_quant_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hidden 256: k-quants work on rows that are multiples of 256 (narrower rows fall back to legacy types)."""
    tokenizer = load_fixture_tokenizer("qwen")
    folder = tmp_path_factory.mktemp("kq")
    dims = {"hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512}
    build_model("llama", tokenizer, 0, **dims).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["q4_k_m", "q5_k_m", "q6_k"])
def test_k_quants_are_written_by_llama_cpp_and_verified(kind: str, k_quant_model_dir: Path, tmp_path: Path) -> None:
    meta = export_gguf(str(k_quant_model_dir), str(tmp_path / "out"), kind)
    assert f"{kind.split('_')[0].upper()}_K" in meta["tensor_types"]
    numbers = meta["verification"]
    assert numbers["f32_gguf_vs_rounded"] == 0.0  # the f32 file quantised by llama.cpp was verified first
    assert "llamacpp_vs_reference" in numbers and numbers["llamacpp_tokenizer_probes"] >= 6
    assert [p.name for p in (tmp_path / "out").glob("*.gguf")] == [f"out.{kind}.gguf"]


def test_exported_file_generates_the_merged_models_greedy_text_in_llama_cpp(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    export_gguf(str(tiny_model_dir), str(tmp_path / "out"), "f32")
    tokenizer = load_plain_tokenizer(str(tiny_model_dir))
    model = load_base_model(str(tiny_model_dir), torch.float32)
    prompt = get_template("auto", tokenizer).encode_prompt(tokenizer, [{"role": "user", "content": "Hello!"}])
    with torch.no_grad():
        want = model.generate(torch.tensor([prompt]), max_new_tokens=8, min_new_tokens=8, do_sample=False)
    runner = llama_cpp.Llama(model_path=str(tmp_path / "out" / "out.f32.gguf"), n_ctx=64, verbose=False)
    got = []
    for token in runner.generate(prompt, temp=0.0, top_k=1):
        got.append(token)
        if len(got) == 8:
            break
    assert got == want[0, len(prompt) :].tolist()


def test_llama_cpp_itself_rejects_unpermuted_qk(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Negative control against the real consumer: llama.cpp's logits on an unpermuted file do not match."""
    model = load_base_model(str(tiny_model_dir), torch.float32)
    tokenizer = load_plain_tokenizer(str(tiny_model_dir))
    ids = tokenizer("The quick brown fox jumps over the lazy dog again and again").input_ids
    for permute in (True, False):
        path = tmp_path / f"permute-{permute}.gguf"
        stops = [tokenizer.eos_token_id]
        write_gguf(path, model, tokenizer, arch_for(model.config), "f32", stops, None, Provenance("t", "b"), permute)
        if permute:
            assert check_llamacpp(path, tokenizer, model, ids, 2e-3)["llamacpp_vs_reference"] <= 2e-3
        else:
            with pytest.raises(ExportError, match=r"llama\.cpp logits differ"):
                check_llamacpp(path, tokenizer, model, ids, 2e-3)
