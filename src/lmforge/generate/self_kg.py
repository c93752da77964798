"""Self-KG (as HuaTuo built its data from a medical knowledge graph): questions and answers grounded in triples.

Triples are grouped by head entity; the relation -> question pattern table (`triples.pattern_questions`) gives one
question per (entity, relation) whose answer lists every tail, with no model at all. Options: two-hop questions
from paths of length 2; a model paraphrase of each question for variety (kept only if it is still a question that
names the entity; otherwise the template question stays and the paraphrase is counted as rejected); model-written
answers from the facts, kept only when `answer_supported` finds every fact's tail in them. Records keep the triples
(file:line) they came from.
"""

from __future__ import annotations

from lmforge.generate.backends import Request
from lmforge.generate.generate_config import SelfKGConfig
from lmforge.generate.generation_run import Run
from lmforge.generate.triples import (
    QAPair,
    Triple,
    answer_supported,
    entity_name,
    group_by_entity,
    load_triples,
    multi_hop_questions,
    pattern_questions,
    two_hop_paths,
)
from lmforge.utils.errors import DataError

PARAPHRASE_ID = "self-kg/paraphrase-v1"
ANSWER_ID = "self-kg/answer-v1"


def paraphrase_prompt(question: str) -> str:
    return (
        "Rewrite the question in different words. Keep its meaning and every name in it. Reply with the new "
        f"question only.\n\nQuestion: {question}"
    )


def answer_prompt(question: str, triples: tuple[Triple, ...]) -> str:
    facts = "\n".join(f"- {entity_name(t.head)} {t.relation.replace('_', ' ')} {entity_name(t.tail)}" for t in triples)
    return (
        f"Facts:\n{facts}\n\nAnswer the question using only these facts, in a sentence or two.\n\nQuestion: {question}"
    )


def names_entity(text: str, entity: str) -> bool:
    """Every word of the entity's name appears in `text` (case-insensitive; CJK names as substrings)."""
    lowered = text.lower()
    return all(word in lowered for word in entity_name(entity).lower().split())


class SelfKG:
    def __init__(self, run: Run, cfg: SelfKGConfig) -> None:
        self.run, self.cfg = run, cfg
        triples = load_triples(cfg.triples)
        if not triples:
            raise DataError(f"self_kg.triples {cfg.triples}: no triples")
        self.pairs: list[tuple[int, QAPair]] = []  # (hops, pair) in triples order, then the two-hop ones
        for entity, group in group_by_entity(triples).items():
            self.pairs += [(1, pair) for pair in pattern_questions(entity, group)]
        if cfg.multi_hop:
            self.pairs += [(2, pair) for pair in multi_hop_questions(two_hop_paths(triples, cfg.max_paths))]
        if cfg.max_questions is not None:
            self.pairs = self.pairs[: cfg.max_questions]

    def generate(self) -> None:
        size = self.cfg.questions_per_wave
        for start in range(0, len(self.pairs), size):
            if self.run.stopped:
                return
            self.wave(list(enumerate(self.pairs[start : start + size], start)))

    def wave(self, numbered: list[tuple[int, tuple[int, QAPair]]]) -> None:
        questions = {i: pair.question for i, (_, pair) in numbered}
        asked: dict[int, list[Request]] = {i: [] for i, _ in numbered}
        if self.cfg.paraphrase:
            requests = [
                self.run.request(f"self-kg/q{i}/paraphrase", PARAPHRASE_ID, paraphrase_prompt(p.question), True)
                for i, (_, p) in numbered
            ]
            for (i, (_, pair)), request, reply in zip(numbered, requests, self.run.ask(requests), strict=False):
                asked[i].append(request)
                if self.run.refused(reply, request):
                    continue
                problem = self.paraphrase_problem(reply.text.strip(), reply.finish, pair)
                if problem:
                    self.run.store.reject(problem, reply.text, key=request.key, question=pair.question)
                else:
                    questions[i] = reply.text.strip()
            numbered = [(i, item) for i, item in numbered if asked[i]]  # those the budget reached
        answers = {i: pair.answer for i, (_, pair) in numbered}
        if self.cfg.model_answers:
            requests = [
                self.run.request(f"self-kg/q{i}/answer", ANSWER_ID, answer_prompt(questions[i], p.triples), False)
                for i, (_, p) in numbered
            ]
            replies = self.run.ask(requests)
            numbered = numbered[: len(replies)]
            for (i, (_, pair)), request, reply in zip(numbered, requests, replies, strict=True):
                asked[i].append(request)
                if self.run.refused(reply, request):
                    answers.pop(i)
                elif not answer_supported(reply.text, pair.triples):
                    self.run.store.reject("unsupported_answer", reply.text, key=request.key, question=questions[i])
                    answers.pop(i)
                else:
                    answers[i] = reply.text.strip()
        for i, (hops, pair) in numbered:
            if i in answers:
                self.write(i, hops, pair, questions[i], answers[i], asked[i])

    def paraphrase_problem(self, text: str, finish: str, pair: QAPair) -> str | None:
        if finish == "length" or not text.endswith(("?", "？")):
            return "paraphrase_not_a_question"
        if not names_entity(text, pair.triples[0].head):
            return "paraphrase_drops_entity"
        return None

    def write(self, index: int, hops: int, pair: QAPair, question: str, answer: str, requests: list[Request]) -> None:
        facts = [[t.head, t.relation, t.tail, f"{t.source}:{t.line}"] for t in pair.triples]
        source = {"question_index": index, "hops": hops, "template_question": pair.question, "triples": facts}
        self.run.store.record(question, "", answer, self.run.provenance(requests, None, source))
