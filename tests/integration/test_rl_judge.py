"""RLAIF over real HTTP: GRPO's AI judge talks to `lmforge serve`'s app (create_app + uvicorn) started in the test.

The judge is the tiny model SFT-trained here to answer "7" to every judge prompt, so its scores parse; the same
server also yields real failures: a wrong API key (401: said, not retried) and a score regex its replies never
match (retried). Failed samples are counted and excluded -- never scored as 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmforge.config.schema import JudgeConfig
from lmforge.rl.judge import JudgeSource
from lmforge.rl.rewards import MissingRewardsError, RewardBatch
from lmforge.train import run_training
from lmforge.training.callbacks import read_log
from tests.integration.rl_runs import write_rl_config
from tests.integration.runs import load, write_alpaca, write_config

pytestmark = pytest.mark.slow

KEY_ENV = "LMFORGE_TEST_JUDGE_KEY"
PROMPT = "Rate the reply from 0 to 10.\nPrompt: {prompt}\nReply: {response}\nScore:"


@pytest.fixture(scope="module")
def judge_url(tmp_path_factory, tiny_model_dir):
    """A judge model answering "7", served by lmforge's API app with an API key on a free local port."""
    from lmforge.inference.engine import load_engine
    from lmforge.inference.server import create_app
    from tests.fixtures.server import running_server

    folder = tmp_path_factory.mktemp("judge")
    rows = [(PROMPT.replace("{prompt}", f"question {i}").replace("{response}", "x" * i), "7") for i in range(8)]
    config = write_config(
        folder,
        tiny_model_dir,
        write_alpaca(folder / "judge.json", rows),
        method={"name": "full"},
        train={"max_steps": 30, "learning_rate": 3e-3, "per_device_train_batch_size": 8},
    )
    run_training(load(config), resume=False)
    engine = load_engine(str(folder / "out"), template="chatml", dtype="float32")
    with running_server(create_app(engine, api_key="judge-key", model_name="judge")) as url:
        yield url


def _batch(n: int) -> RewardBatch:
    return RewardBatch(
        messages=[[{"role": "user", "content": f"question {i}"}] for i in range(n)],
        completions=["x" * i for i in range(n)],
        completion_ids=[[1] * i for i in range(n)],
        references=[None] * n,
        ended=[True] * n,
    )


def _judge(url: str, **kw) -> JudgeConfig:
    return JudgeConfig(base_url=url, model="judge", prompt=PROMPT, api_key_env=KEY_ENV, max_tokens=4, **kw)


def test_judge_scores_parse_over_http(judge_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "judge-key")
    source = JudgeSource(_judge(judge_url))
    assert source.score(_batch(4)) == [pytest.approx(0.7)] * 4
    assert not source.failures and not source.attempt_failures


def test_wrong_api_key_is_said_and_counted_without_retries(judge_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    source = JudgeSource(_judge(judge_url, max_retries=1))
    assert source.score(_batch(3)) == [None, None, None]
    assert source.failures == {"auth": 3} and source.attempt_failures == {"auth": 3}
    assert f"answered 401: the API key is wrong or missing (from {KEY_ENV})" in source.causes["auth"]


def _grpo_with_judge(tmp_path: Path, model_dir: Path, judge: JudgeConfig, **rl) -> Path:
    settings = {"judge": dataclasses.asdict(judge), "num_generations": 2, "max_new_tokens": 4, **rl}
    train = {"max_steps": 2, "learning_rate": 1e-2}
    config = write_rl_config(
        tmp_path, model_dir, "grpo", method={"name": "lora", "lora_rank": 4}, rl=settings, train=train
    )
    run_training(load(config), resume=False)
    return tmp_path / "out"


def test_grpo_trains_on_judge_scores(judge_url, monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.setenv(KEY_ENV, "judge-key")
    out = _grpo_with_judge(tmp_path, tiny_model_dir, _judge(judge_url), reward_funcs=[])
    records = [r for r in read_log(out) if "reward" in r]
    assert len(records) == 2
    assert all(r["rewards/judge"] == pytest.approx(0.7) and r["rewards/excluded_total"] == 0 for r in records)


LOWERCASE = "tests.integration.rl_rewards:lowercase_fraction"


def _adapter_b_is_zero(out: Path) -> bool:
    weights = load_file(str(out / "adapter_model.safetensors"))
    return all(torch.count_nonzero(w) == 0 for name, w in weights.items() if "lora_B" in name)


def test_unparsable_judge_replies_exclude_samples_instead_of_scoring_zero(
    judge_url, monkeypatch, tmp_path, tiny_model_dir
):
    """With a lowercase-share reward beside a judge whose regex never matches, every sample is excluded: the
    adapter stays untouched. Negative control: the same run with 0 in place of the failed judge scores trains."""
    monkeypatch.setenv(KEY_ENV, "judge-key")
    judge = _judge(judge_url, max_retries=1, score_regex=r"SCORE=(\d+)")
    with pytest.raises(MissingRewardsError, match="judge: 8 unparsable"):  # by default such a run stops at once
        _grpo_with_judge(tmp_path / "stops", tiny_model_dir, judge, reward_funcs=[LOWERCASE])
    out = _grpo_with_judge(tmp_path / "judge", tiny_model_dir, judge, reward_funcs=[LOWERCASE], max_missing_rewards=1)
    last = [r for r in read_log(out) if "reward" in r][-1]
    samples = 2 * 4 * 2  # steps x prompts x generations
    assert last["rewards/excluded_total"] == samples
    assert last["rewards/judge_failed_unparsable"] == samples
    assert _adapter_b_is_zero(out)

    zeros = {"reward_funcs": [LOWERCASE, "tests.integration.rl_rewards:zero"], "judge": None}
    control = write_rl_config(
        (tmp_path / "control"),
        tiny_model_dir,
        "grpo",
        method={"name": "lora", "lora_rank": 4},
        rl={"num_generations": 2, "max_new_tokens": 4, **zeros},
        train={"max_steps": 2, "learning_rate": 1e-2},
    )
    run_training(load(control), resume=False)
    assert not _adapter_b_is_zero(tmp_path / "control" / "out")
