"""A tiny generator model for `lmforge generate` tests, SFT-trained here to answer the pipelines' prompts in a
parseable way (as the RL judge tests train theirs to answer "7"): its training rows are the very prompts the
pipelines build, with fixed replies."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from lmforge.generate import self_instruct_prompts as si
from lmforge.generate import self_qa as qa
from lmforge.generate.documents import Document, chunk_documents
from lmforge.generate.seeds import load_seed_tasks
from lmforge.train import run_training
from tests.integration.runs import REPO, load, write_config

SEEDS = REPO / "examples/data/generate/seed_tasks.jsonl"
NEW_TASKS = [
    "Name three fruits that are red.",
    "Classify the animal as a mammal or a bird.",
    "Translate the greeting into French.",
]
IN_CONTEXT = 3  # self_instruct.num_prompt_instructions of the test runs: short prompts, quick to learn
PROPOSAL_REPLY = f"{NEW_TASKS[0]}\n5. {NEW_TASKS[1]}\n6. {NEW_TASKS[2]}"
CLASSIFICATION = {NEW_TASKS[0]: "No", NEW_TASKS[1]: "Yes", NEW_TASKS[2]: "No"}
INSTANCES = {
    NEW_TASKS[0]: "Output: Apples, cherries and strawberries.",
    NEW_TASKS[1]: "Class label: Mammal\nInput: dog\nClass label: Bird\nInput: eagle",
    NEW_TASKS[2]: "Example 1\nInput: Good morning.\nOutput: Bonjour.\nExample 2\nInput: Thank you.\nOutput: Merci.",
}


def self_instruct_rows() -> list[tuple[str, str]]:
    pool = [s.instruction for s in load_seed_tasks(SEEDS)] + NEW_TASKS
    rng = random.Random(0)
    rows = [(si.propose_prompt(rng.sample(pool, IN_CONTEXT)), PROPOSAL_REPLY) for _ in range(12)]
    for task, label in CLASSIFICATION.items():  # each exact prompt 4 times: as many rows as the varied proposals
        rows += [(si.classify_prompt(task), label)] * 4
        rows += [(si.instance_prompt(task, label == "Yes")[1], INSTANCES[task])] * 4
    return rows


QA_TEXT = (
    "Marie Curie was a physicist and chemist who was born in Warsaw in 1867. She won the Nobel Prize in Physics in "
    "1903 and the Nobel Prize in Chemistry in 1911.\n"
)
QUESTIONS_PER_CHUNK = 4
QA_QUESTIONS_REPLY = (
    "1. Where was Marie Curie born?\n2. What does the passage say about her prizes?\n3. Marie Curie won two prizes."
    "\n4. Where was Marie Curie born?"
)
QA_ANSWERS = {"Where was Marie Curie born?": "Marie Curie was born in Warsaw, in 1867."}


def self_qa_rows(tokenizer: Any) -> list[tuple[str, str]]:
    """The question prompt of QA_TEXT's one chunk (as the pipeline cuts it) and the answer prompt of its question."""
    (chunk,) = chunk_documents([Document("curie.txt", QA_TEXT, "curie.txt")], tokenizer, 256, 16)
    rows = [(qa.questions_prompt(chunk.text, QUESTIONS_PER_CHUNK), QA_QUESTIONS_REPLY)] * 4
    return rows + [(qa.answer_prompt(chunk.text, q), a) for q, a in QA_ANSWERS.items()] * 4


def generator_rows(tokenizer: Any) -> list[tuple[str, str]]:
    return self_instruct_rows() + self_qa_rows(tokenizer)


def train_generator(folder: Path, base: Path, rows: list[tuple[str, str]], steps: int = 240) -> Path:
    """Full SFT of the tiny model on (prompt, reply) rows until it repeats the replies greedily; returns its folder."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "generator_sft.json"
    data.write_text(json.dumps([{"instruction": p, "input": "", "output": r} for p, r in rows]), encoding="utf-8")
    config = write_config(
        folder,
        base,
        data,
        method={"name": "full"},
        data={"cutoff_len": 1024},
        train={"max_steps": steps, "learning_rate": 5e-3, "per_device_train_batch_size": 4},
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the per-test one-thread fixture; a tiny model wants one
    try:
        run_training(load(config), resume=False)
    finally:
        torch.set_num_threads(threads)
    return folder / "out"
