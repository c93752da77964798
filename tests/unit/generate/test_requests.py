"""Request building: per-request seeds fixed by the key, the wire payload."""

from __future__ import annotations

from lmforge.generate.backends import EndpointGenerator, Request
from lmforge.generate.generate_config import GeneratorConfig
from lmforge.generate.generation_run import seed_for
from lmforge.inference.sampling import GenerationOptions


def test_a_request_seed_depends_on_the_run_seed_and_key_only() -> None:
    assert seed_for(0, "self-instruct/r0/p1") == seed_for(0, "self-instruct/r0/p1")
    assert len({seed_for(0, "a"), seed_for(1, "a"), seed_for(0, "b")}) == 3
    assert 0 <= seed_for(5, "x") < 2**63  # the API's seed range


def test_payload_sends_extensions_only_when_used() -> None:
    gen = EndpointGenerator(GeneratorConfig(base_url="http://127.0.0.1:9/v1", model="m"))
    plain = gen.payload(Request("k", "p", [{"role": "user", "content": "hi"}], GenerationOptions(8, seed=3)))
    assert plain == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 3,
    }
    options = GenerationOptions(8, temperature=1.0, top_k=5, repetition_penalty=1.1)
    extended = gen.payload(Request("k", "p", [], options))
    assert extended["top_k"] == 5 and extended["repetition_penalty"] == 1.1
    gen.close()
