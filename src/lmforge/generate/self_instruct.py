"""Self-Instruct (Wang et al. 2023): grow a few seed tasks into many instruction/input/output records.

Each round: `prompts_per_round` proposal prompts, each a numbered list of in-context instructions (seeds plus up to
`num_machine_instructions` generated ones) left open for the model to continue; new instructions pass the filters
(length, blacklist, banned prefixes, leading punctuation, then ROUGE-L near-duplicates against the whole pool) and
join the pool at once. Then each accepted task is classified (finite labels or not) and gets instances: output-first
for classification tasks, input-first otherwise; instances are cleaned (empty output, input == output, truncated,
conflicting outputs for one input, duplicates, more than `max_instances`). Every dropped candidate is a reject with
its reason.

Nothing waits at a stage or round barrier: a task's classify -> instances chain starts as soon as the proposal reply
that accepted it has been read (replies are read in order, so the pool grows as in a sequential run), and proposals
run as a sliding window of `prompts_per_round` (proposal j + prompts_per_round is drawn and sent once proposal j is
read). Chains are consumed in task order one window later, so the records, rejects and their order depend on the
config alone, never on concurrency or timing.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from lmforge.generate import self_instruct_prompts as prompts
from lmforge.generate.backends import Reply, Request
from lmforge.generate.dedup import NearDuplicateIndex
from lmforge.generate.generate_config import SelfInstructConfig
from lmforge.generate.generation_run import ChainResult, Run, Step, seed_for
from lmforge.generate.parsing import contains_phrase, starts_with_text, word_count
from lmforge.generate.seeds import SeedTask, load_seed_tasks


@dataclass
class Task:
    id: str
    instruction: str
    round: int
    proposal: Request
    source: dict[str, Any]
    requests: list[Request] = field(default_factory=list)
    is_classification: bool = False
    chain: Future[ChainResult] | None = None  # its classify -> instances requests on their way


def instruction_problem(text: str, cfg: SelfInstructConfig) -> str | None:
    """Why a proposed instruction is rejected before the similarity check, or None."""
    words = word_count(text)
    if words < cfg.min_words:
        return "too_short"
    if words > cfg.max_words:
        return "too_long"
    if contains_phrase(text, [*cfg.blacklist, *cfg.extra_blacklist]):
        return "blacklisted_word"
    if any(text.lower().startswith(p.lower()) for p in cfg.banned_prefixes):
        return "banned_prefix"
    if not starts_with_text(text):
        return "starts_with_punctuation"
    return None


def clean_instances(
    pairs: list[tuple[str, str]], max_instances: int
) -> tuple[list[tuple[str, str]], list[tuple[str, tuple[str, str]]], bool]:
    """Kept pairs, dropped (reason, pair)s, and whether the task has conflicting outputs for one input (then the
    whole task goes: the model does not know what the task means)."""
    kept: list[tuple[str, str]] = []
    dropped: list[tuple[str, tuple[str, str]]] = []
    outputs: dict[str, set[str]] = {}
    for pair in pairs:
        inp, out = pair
        if not out:
            dropped.append(("instance_empty_output", pair))
        elif inp == out:
            dropped.append(("instance_input_equals_output", pair))
        elif inp.endswith(":") or out.endswith(":"):
            dropped.append(("instance_truncated", pair))
        elif pair in kept:
            dropped.append(("instance_duplicate", pair))
        else:
            kept.append(pair)
            if inp:
                outputs.setdefault(inp, set()).add(out)
    conflicting = any(len(v) > 1 for v in outputs.values())
    dropped += [("instance_over_max", pair) for pair in kept[max_instances:]]
    return kept[:max_instances], dropped, conflicting


class SelfInstruct:
    def __init__(self, run: Run, cfg: SelfInstructConfig) -> None:
        self.run, self.cfg = run, cfg
        self.seeds: list[SeedTask] = load_seed_tasks(cfg.seed_tasks)
        self.index = NearDuplicateIndex(threshold=cfg.rouge_threshold)
        self.pool: list[str] = []  # seeds then accepted instructions; positions are the index's ids
        for seed in self.seeds:
            self._add(seed.instruction)
        self.machine: list[tuple[str, str]] = []  # (task id, instruction) of accepted tasks
        self.accepted = 0

    def _add(self, text: str) -> None:
        self.index.add(text)
        self.pool.append(text)

    def generate(self) -> None:
        """Proposals run as a sliding window of `prompts_per_round`: proposal j + prompts_per_round goes out as soon
        as proposal j has been read, its in-context draw made from the pool as it stands then. So the model always
        has a window of proposals to work on, with no barrier at a round's end, and what is sent depends on the
        config alone (not on concurrency or timing). A proposal's tasks are finished (their chains consumed, their
        records written) one window later, when their replies are in, so records stay in task order."""
        window, total = self.cfg.prompts_per_round, self.cfg.max_rounds * self.cfg.prompts_per_round
        following = min(window, total)
        in_flight = deque(self._propose(range(following)))  # one wave: a dry run prints the whole first window
        unfinished: deque[list[Task]] = deque()
        while in_flight:
            tasks = self._read_proposal(*in_flight.popleft())
            if tasks is None:  # the generator failed or a budget ran out
                break
            unfinished.append(tasks)
            if following < total:
                in_flight.extend(self._propose([following]))
                following += 1
            if len(unfinished) > window:
                self._finish(unfinished.popleft())
        while unfinished:
            self._finish(unfinished.popleft())
        if following >= total and self.accepted < self.cfg.num_instructions and not self.run.stopped:
            self.run.stopped = f"max_rounds ({self.cfg.max_rounds}) reached"

    def _propose(
        self, indices: Iterable[int]
    ) -> list[tuple[int, Request, list[tuple[str, str]], Future[ChainResult]]]:
        """Send these proposals (index, request, in-context tasks, pending reply); none once the target is reached
        or the run stopped, fewer when a budget runs out."""
        if self.accepted >= self.cfg.num_instructions or self.run.stopped:
            return []
        window = self.cfg.prompts_per_round
        sent = []
        for index in indices:
            key = f"self-instruct/r{index // window}/p{index % window}"
            context = self._context(key)
            text = prompts.propose_prompt([instruction for _, instruction in context])
            sent.append((index, self.run.request(key, prompts.PROPOSE_ID, text, creative=True), context))
        pending = self.run.send([request for _, request, _ in sent])
        return [(*proposal, reply) for proposal, reply in zip(sent, pending, strict=False)]

    def _read_proposal(
        self, index: int, request: Request, context: list[tuple[str, str]], pending: Future[ChainResult]
    ) -> list[Task] | None:
        """The accepted tasks of one proposal reply, each with its chain started; None when no reply came."""
        done = self.run.collect(pending)
        if not done:
            return None
        reply = done[0][1]
        if self.run.refused(reply, request):
            return []
        items = prompts.proposed_instructions(reply.text, len(context) + 1)
        if not items:
            self.run.store.reject("unparsable_proposal", reply.text, key=request.key)
            return []
        if reply.finish == "length":  # the last item may be cut off
            self.run.store.reject("truncated_proposal", items.pop(), key=request.key)
        source = {"in_context": [task_id for task_id, _ in context]}
        round_index, position = divmod(index, self.cfg.prompts_per_round)
        tasks = []
        for j, item in enumerate(items):
            task = Task(f"r{round_index}-p{position}-{j}", item, round_index, request, source)
            if self._accept(task):
                task.chain = self.run.chain(self._steps(task))
                tasks.append(task)
        return tasks

    def _context(self, key: str) -> list[tuple[str, str]]:
        """In-context (id, instruction)s of one proposal prompt: a seeded draw, fixed by the request key."""
        rng = random.Random(seed_for(self.run.cfg.seed, key))
        machine = rng.sample(self.machine, min(self.cfg.num_machine_instructions, len(self.machine)))
        seeds = [(s.id, s.instruction) for s in self.seeds]
        context = machine + rng.sample(seeds, min(self.cfg.num_prompt_instructions - len(machine), len(seeds)))
        rng.shuffle(context)
        return context

    def _accept(self, task: Task) -> bool:
        store = self.run.store
        problem = instruction_problem(task.instruction, self.cfg)
        if problem:
            store.reject(problem, task.instruction, key=task.proposal.key)
            return False
        if self.index.is_duplicate(task.instruction):
            score, nearest = self.index.most_similar(task.instruction)
            similar = self.pool[nearest] if nearest is not None else None
            store.reject("near_duplicate", task.instruction, key=task.proposal.key, rouge_l=score, similar_to=similar)
            return False
        if self.accepted >= self.cfg.num_instructions:
            store.reject("over_target", task.instruction, key=task.proposal.key)
            return False
        self._add(task.instruction)
        self.machine.append((task.id, task.instruction))
        self.accepted += 1
        return True

    def _steps(self, task: Task) -> list[Step]:
        """A task's chain: classify it (when detect_classification), then ask for instances in the matching order."""
        classify = self.run.request(
            f"self-instruct/{task.id}/classify",
            prompts.CLASSIFY_ID,
            prompts.classify_prompt(task.instruction),
            False,
            8,
        )
        if not self.cfg.detect_classification:
            return [lambda _: self._instance_request(task, False)]
        return [lambda _: classify, lambda replies: self._instance_request(task, bool(_verdict(replies[0])))]

    def _finish(self, tasks: list[Task]) -> None:
        """Consume the tasks' chains in task order: note the classifications, clean the instances, write records."""
        for task in tasks:
            done = self.run.collect(task.chain)
            if len(done) < 1 + self.cfg.detect_classification:  # cut by the budget or a failed generator
                continue
            if self.cfg.detect_classification:
                task.requests.append(done[0][0])
                verdict = _verdict(done[0][1])
                if verdict is None:
                    self.run.notes["classification_unparsable (taken as not classification)"] += 1
                task.is_classification = bool(verdict)
            request, reply = done[-1]
            if self.run.refused(reply, request):
                continue
            parse = prompts.instances_output_first if task.is_classification else prompts.instances_input_first
            pairs = parse(reply.text, truncated=reply.finish == "length")
            kept, dropped, conflicting = clean_instances(pairs, self.cfg.max_instances)
            for reason, (inp, out) in dropped:
                self.run.store.reject(reason, f"{inp}\n=> {out}", key=request.key, instruction=task.instruction)
            if conflicting or not kept:
                reason = "conflicting_outputs" if conflicting else "no_valid_instances"
                self.run.store.reject(reason, task.instruction, key=request.key, reply=reply.text)
                continue
            self._write(task, request, kept)

    def _instance_request(self, task: Task, is_classification: bool) -> Request:
        prompt_id, text = prompts.instance_prompt(task.instruction, is_classification)
        return self.run.request(f"self-instruct/{task.id}/instances", prompt_id, text, creative=False)

    def _write(self, task: Task, request: Request, kept: list[tuple[str, str]]) -> None:
        source = {**task.source, "task_id": task.id, "is_classification": task.is_classification}
        provenance = self.run.provenance([task.proposal, *task.requests, request], task.round, source)
        for inp, out in kept:
            self.run.store.record(task.instruction, inp, out, provenance)


def _verdict(classify_reply: Reply) -> bool | None:
    """Whether the classify reply says the task has finite labels (None: unreadable; a refused request: no)."""
    return False if classify_reply.finish == "refused" else prompts.is_classification(classify_reply.text)
