"""`choice`: multiple-choice accuracy from the option letters' next-token likelihoods.

Each question becomes a conversation: k solved dev-split questions as user/assistant turns (the reply is the
letter), then the question as the last user turn, rendered by the template's `encode_prompt` (the ids chat and
training use). The model's logits for the position after the prompt are compared at the letters' token ids; the
highest is the prediction. The letter ids come from the template itself (how a reply "A" is encoded in training),
and must be one distinct token each, or scoring stops with an error.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.evaluation.benchmarks import Question
from lmforge.inference.decoding import pad_left
from lmforge.templates import ChatTemplate, Message
from lmforge.utils.errors import ConfigError

INSTRUCTIONS = {  # (header before the first question, line after each question's options)
    "mmlu": ("The following are multiple choice questions (with answers) about {subject}.\n\n", "Answer:"),
    "ceval": ("以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n", "答案："),
    "cmmlu": ("以下是关于{subject}的单项选择题，请直接给出正确答案的选项。\n\n", "答案："),
}


@dataclass(frozen=True)
class LetterIds:
    """Token ids of the option letters as a reply starts, and ids every reply shares before the letter."""

    letters: list[str]
    ids: list[int]
    reply_prefix: list[int]


def format_question(question: Question, answer_line: str) -> str:
    options = [f"{letter}. {text}" for letter, text in question.options.items()]
    return "\n".join([question.question, *options, answer_line])


def build_messages(question: Question, shots: list[Question], subject: str, layout: str) -> list[Message]:
    """The k-shot conversation ending with the question as a user turn; the header opens the first user turn."""
    header, answer_line = INSTRUCTIONS[layout]
    messages: list[Message] = []
    for shot in shots:
        messages.append({"role": "user", "content": format_question(shot, answer_line)})
        messages.append({"role": "assistant", "content": shot.answer})
    messages.append({"role": "user", "content": format_question(question, answer_line)})
    intro = header.format(subject=subject.replace("_", " "))
    messages[0] = {"role": "user", "content": intro + messages[0]["content"]}
    return messages


def letter_token_ids(template: ChatTemplate, tokenizer: Any, letters: list[str]) -> LetterIds:
    """The id each letter is trained as when it opens a reply; refuses letters that are not single distinct tokens."""
    encoded = [
        template.encode(tokenizer, [{"role": "user", "content": "?"}, {"role": "assistant", "content": L}])
        for L in letters
    ]
    replies = [enc.input_ids[slice(*enc.replies[-1])] for enc in encoded]
    shared = 0
    while all(len(r) > shared for r in replies) and len({r[shared] for r in replies}) == 1:
        shared += 1
    ids = [r[shared] if len(r) > shared else -1 for r in replies]
    for letter, reply, token in zip(letters, replies, ids, strict=True):
        if token < 0 or tokenizer.decode([token]).strip() != letter:
            raise ConfigError(
                f"option letter {letter!r} is not a single token with this tokenizer and template {template.name!r} "
                f"(a reply {letter!r} is encoded as {tokenizer.convert_ids_to_tokens(reply)}); "
                "letter-likelihood scoring needs one token per letter"
            )
    if len(set(ids)) != len(ids):
        raise ConfigError(f"option letters {letters} share token ids {ids} with this tokenizer")
    return LetterIds(list(letters), ids, replies[0][:shared])


def _keeps_last_logits_only(model: Any) -> bool:
    """Whether the model's forward takes `logits_to_keep` (transformers causal LMs; PEFT wraps one)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


@torch.no_grad()
def letter_logits(model: Any, prompts: list[list[int]], letter_ids: list[int], pad_id: int) -> torch.Tensor:
    """[len(prompts), len(letter_ids)] logits of the next token after each prompt.

    Left padding puts every prompt's last token in the last column, so only that column's logits are computed
    (`logits_to_keep=1`: a [batch, vocab] instead of a [batch, length, vocab] tensor, which for 5-shot prompts and
    a 150k vocabulary is gigabytes); position ids count real tokens only, so padding changes no position.
    """
    ids, mask = pad_left(prompts, pad_id)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    kwargs = {"logits_to_keep": 1} if _keeps_last_logits_only(model) else {}
    device = model.device
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=False,
        **kwargs,
    )
    return out.logits[:, -1, letter_ids].float().cpu()


def predict_letters(
    model: Any, prompts: list[list[int]], letters: LetterIds, pad_id: int, batch_size: int, progress: Any = None
) -> list[str]:
    """The highest-scoring letter per prompt (ties go to the earlier letter)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    predictions = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        scores = letter_logits(model, [prompts[i] + letters.reply_prefix for i in indices], letters.ids, pad_id)
        for i, best in zip(indices, scores.argmax(dim=1).tolist(), strict=True):
            predictions[i] = letters.letters[best]
        if progress is not None:
            progress.update(len(indices))
    return predictions


def accuracy(groups: dict[str, list[bool]]) -> dict[str, dict[str, float]]:
    """Per group: correct, total and accuracy (micro: every question weighs the same)."""
    return {
        name: {"correct": sum(hits), "total": len(hits), "accuracy": sum(hits) / len(hits) if hits else 0.0}
        for name, hits in groups.items()
    }
