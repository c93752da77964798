"""Reward sources: callables loaded from config (errors name the key), builtins, weighted combination, judge
reply parsing, and the failure contract (None is excluded and counted, never a 0)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from lmforge.config.schema import JudgeConfig, RLConfig
from lmforge.rl import builtin
from lmforge.rl.callables import CallableSource
from lmforge.rl.judge import JudgeFailure, JudgeSource, check_judge_config, parse_score
from lmforge.rl.rewards import MissingRewardsError, RewardBatch, build_reward_sources, check_missing_rewards, combine
from lmforge.utils.errors import ConfigError


def _batch(completions: list[str], references: list[str | None] | None = None) -> RewardBatch:
    n = len(completions)
    return RewardBatch(
        messages=[[{"role": "user", "content": f"q{i}"}] for i in range(n)],
        completions=completions,
        completion_ids=[list(range(len(c))) for c in completions],
        references=references or [None] * n,
        ended=[True] * n,
    )


def test_builtin_exact_match_normalises_case_space_and_final_period():
    batch = _batch(["Paris.", " paris ", "Lyon"], ["Paris", "Paris", "Paris"])
    assert CallableSource.from_config("lmforge.rl.builtin:exact_match", "k").score(batch) == [1.0, 1.0, 0.0]


def test_exact_match_without_references_names_the_missing_column():
    with pytest.raises(ConfigError, match="reference answer"):
        builtin.exact_match(["a"], [None])


def test_regex_and_length_builtins_take_their_options_from_the_config_entry():
    batch = _batch(["answer: 42", "no number"])
    regex = CallableSource.from_config({"func": "lmforge.rl.builtin:regex_match", "pattern": r"\d+"}, "k")
    assert regex.score(batch) == [1.0, 0.0]
    length = CallableSource.from_config({"func": "lmforge.rl.builtin:length", "target": 10}, "k")
    assert length.score(batch) == [1.0, pytest.approx(0.9)]


def test_unimportable_module_names_the_config_key():
    with pytest.raises(ConfigError, match=r"rl.reward_funcs\[1\]: cannot import module 'no_such_pkg.mod'"):
        CallableSource.from_config("no_such_pkg.mod:fn", "rl.reward_funcs[1]")


def test_missing_function_names_the_module_and_attribute():
    with pytest.raises(ConfigError, match=r"module 'lmforge\.rl\.builtin' has no attribute 'nope'"):
        CallableSource.from_config("lmforge.rl.builtin:nope", "rl.reward_funcs[0]")


def test_a_required_parameter_the_config_does_not_fill_is_a_signature_error():
    with pytest.raises(ConfigError, match="parameter 'threshold' that cannot be filled"):
        CallableSource.from_config("tests.integration.rl_rewards:needs_two_args", "rl.reward_funcs[0]")
    ok = CallableSource.from_config(
        {"func": "tests.integration.rl_rewards:needs_two_args", "threshold": 2}, "rl.reward_funcs[0]"
    )
    assert ok.score(_batch(["abc", "a"])) == [1.0, 0.0]


def test_unknown_extra_keys_are_rejected():
    with pytest.raises(ConfigError, match=r"takes no argument 'patern' \(did you mean \"pattern\"\?\)"):
        CallableSource.from_config({"func": "lmforge.rl.builtin:regex_match", "patern": "x"}, "k")


def test_trl_style_kwargs_functions_receive_everything():
    seen = {}

    def trl_style(prompts, completions, **kwargs):
        seen.update(kwargs, prompts=prompts)
        return [0.5] * len(completions)

    source = CallableSource(trl_style, "m:trl_style", "k", 1.0, {})
    assert source.score(_batch(["a", "b"], ["r", None])) == [0.5, 0.5]
    assert seen["prompts"] == ["q0", "q1"] and seen["references"] == ["r", None] and "completion_ids" in seen


def test_wrong_return_value_is_an_error_naming_the_key():
    source = CallableSource(lambda completions: [1.0], "m:f", "rl.reward_funcs[2]", 1.0, {})
    with pytest.raises(ConfigError, match=r"rl.reward_funcs\[2\].*must return 2 numbers"):
        source.score(_batch(["a", "b"]))
    text = CallableSource(lambda completions: ["x", "y"], "m:f", "k", 1.0, {})
    with pytest.raises(ConfigError, match="returned 'x', not a number"):
        text.score(_batch(["a", "b"]))


def test_combine_weights_sources_and_marks_failed_samples_nan_not_zero():
    class Flaky:
        name, weight, failures = "flaky", 2.0, Counter()

        def score(self, batch):
            return [1.0, None, 0.0]

    length = CallableSource(lambda completions: [float(len(c)) for c in completions], "m:len", "k", 0.5, {})
    result = combine([length, Flaky()], _batch(["ab", "abcd", ""]))
    assert result.total[0].item() == pytest.approx(0.5 * 2 + 2.0)
    assert math.isnan(result.total[1].item()) and result.total[2].item() == 0.0
    assert result.excluded == 1


def test_build_reward_sources_requires_one():
    with pytest.raises(ConfigError, match="need a reward"):
        build_reward_sources(RLConfig(), None, None)


def _judge(**kw) -> JudgeConfig:
    return JudgeConfig(base_url="http://127.0.0.1:1/v1", model="j", **kw)


def test_parse_score_rescales_the_first_number_to_unit_range():
    assert parse_score("I give it 7/10", _judge()) == pytest.approx(0.7)
    assert parse_score("Score: 3", _judge(score_regex=r"Score:\s*(\d+)", max_score=5.0)) == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("reply", "reason"), [("great answer", "unparsable"), ("42", "out_of_range"), ("-1", "out_of_range")]
)
def test_parse_score_failures_carry_their_reason(reply, reason):
    with pytest.raises(JudgeFailure) as info:
        parse_score(reply, _judge())
    assert info.value.reason == reason


def test_judge_config_checks(monkeypatch):
    with pytest.raises(ConfigError, match=r"rl\.judge\.base_url"):
        check_judge_config(JudgeConfig(base_url="localhost:8000", model="m"))
    with pytest.raises(ConfigError, match=r"rl.judge.prompt.*\{response\}"):
        check_judge_config(_judge(prompt="rate {prompt}"))
    monkeypatch.delenv("LMFORGE_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match="LMFORGE_TEST_JUDGE_KEY is not set"):
        check_judge_config(_judge(api_key_env="LMFORGE_TEST_JUDGE_KEY"))
    monkeypatch.setenv("LMFORGE_TEST_JUDGE_KEY", "secret")
    assert check_judge_config(_judge(api_key_env="LMFORGE_TEST_JUDGE_KEY")) == "secret"


def test_judge_that_cannot_be_reached_is_retried_then_counted_never_zero():
    source = JudgeSource(_judge(max_retries=2, backoff_s=0.01, timeout_s=1.0, concurrency=2))  # port 1: refused
    assert source.score(_batch(["a", "b"])) == [None, None]
    assert source.failures == {"http": 2} and source.attempt_failures == {"http": 6}
    result = combine([source], _batch(["a"]))
    assert torch.isnan(result.total).all()


def test_judge_waits_as_a_429_asks_then_scores():
    """Negative control: the judge used to retry at once, and the backoff alone would wait 0.01 s; the second
    request arriving a second later is the Retry-After's doing."""
    from tests.fixtures.scripted_endpoint import completion, error, scripted_endpoint

    with scripted_endpoint([error(429, "rate limited", {"Retry-After": "1"}), completion("7")]) as endpoint:
        source = JudgeSource(JudgeConfig(base_url=endpoint.url, model="j", backoff_s=0.01))
        assert source.score(_batch(["a"])) == [pytest.approx(0.7)]
    assert len(endpoint.chats) == 2 and endpoint.chats[1] - endpoint.chats[0] >= 1.0
    assert not source.failures and source.attempt_failures == {"http": 1}


@pytest.mark.parametrize(("status", "reason"), [(401, "auth"), (400, "refused")])
def test_judge_requests_that_cannot_pass_are_counted_without_retries(status, reason, caplog):
    """A wrong key (said once, as such) or a refused request fails the same way every time: no retries."""
    from tests.fixtures.scripted_endpoint import error, scripted_endpoint

    with scripted_endpoint([error(status, "no")]) as endpoint:
        source = JudgeSource(JudgeConfig(base_url=endpoint.url, model="j", max_retries=2, concurrency=3))
        assert source.score(_batch(["a", "b", "c"])) == [None, None, None]
    assert len(endpoint.chats) == 3
    assert source.failures == {reason: 3} and source.attempt_failures == {reason: 3}
    said = [r for r in caplog.records if "the API key is wrong or missing" in r.getMessage()]
    if reason == "auth":
        assert len(said) == 1 and said[0].levelname == "ERROR"
        assert "answered 401: the API key is wrong or missing (none was set: rl.judge.api_key_env)" in said[0].message
    else:
        assert not said and source.causes["refused"].startswith("status 400")


def test_a_function_taking_no_batch_argument_is_refused_and_one_taking_only_ended_works():
    with pytest.raises(ConfigError, match="takes none of completions"):
        CallableSource(lambda: [], "m:f", "k", 1.0, {})
    ended = CallableSource.from_config("lmforge.rl.builtin:ended_turn", "k")
    batch = _batch(["a", "b"])
    batch.ended = [True, False]
    assert ended.score(batch) == [1.0, 0.0]


@pytest.fixture(scope="module")
def served_base(tiny_model_dir):
    """The tiny model behind lmforge's own API app, answering to the name 'base' (as `serve` names a folder)."""
    from lmforge.inference.engine import load_engine
    from lmforge.inference.server import create_app
    from tests.fixtures.server import running_server

    engine = load_engine(str(tiny_model_dir), dtype="float32")
    with running_server(create_app(engine, model_name="base")) as url:
        yield url


def test_judge_asking_for_a_model_the_endpoint_does_not_serve_names_the_served_models(served_base):
    source = JudgeSource(JudgeConfig(base_url=served_base, model="lmforge", max_retries=0))
    batch = _batch(["a", "b", "c", "d"])
    result = combine([source], batch)
    assert result.excluded == 4 and source.failures == {"model_not_found": 4}
    assert "the endpoint serves base" in source.causes["model_not_found"]
    with pytest.raises(MissingRewardsError, match=r"4 of 4 .*judge: 4 model_not_found \(model not found.*'lmforge'"):
        check_missing_rewards(result, [source], max_fraction=0.5)


def test_missing_rewards_below_the_threshold_warn_with_the_cause_and_above_it_stop(caplog):
    source = CallableSource(lambda completions: [None if c == "x" else 1.0 for c in completions], "m:f", "k", 1, {})
    one_missing = combine([source], _batch(["x", "b", "c", "d"]))
    check_missing_rewards(one_missing, [source], max_fraction=0.5)
    assert "1 of 4 rollout samples got no reward: f: 1 returned_none" in caplog.text
    check_missing_rewards(combine([source], _batch(["x", "x", "c", "d"])), [source], max_fraction=0.5)  # 50%: warn
    with pytest.raises(MissingRewardsError, match=r"rl\.max_missing_rewards"):
        check_missing_rewards(combine([source], _batch(["x", "x", "x", "d"])), [source], max_fraction=0.5)
    check_missing_rewards(combine([source], _batch(["x"] * 4)), [source], max_fraction=1.0)  # 1 = never stop
