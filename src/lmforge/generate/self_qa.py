"""Self-QA (Zhang & Yang 2023): questions and grounded answers from unstructured documents.

Documents are chunked by tokens with overlap. For each chunk the model writes `questions_per_chunk` questions that
must stand alone (a reader never sees the text); kept questions are answered by the model with the chunk in context.
Filters: not a question, length, references to "the text/passage" (leak patterns, English and Chinese), near-duplicate
questions (ROUGE-L, across the whole run), and for answers: empty, cut by the token limit, too long, leaking the
source. Each record keeps its source chunk id.
"""

from __future__ import annotations

import re
from typing import Any

from lmforge.generate.backends import Request
from lmforge.generate.dedup import NearDuplicateIndex
from lmforge.generate.documents import chunk_documents, load_documents
from lmforge.generate.generate_config import SelfQAConfig
from lmforge.generate.generation_run import Run
from lmforge.generate.parsing import numbered_items, word_count
from lmforge.utils.errors import ConfigError

QUESTIONS_ID = "self-qa/questions-v1"
ANSWER_ID = "self-qa/answer-v1"


def questions_prompt(text: str, n: int) -> str:
    return (
        f"Here is a piece of text:\n\n{text}\n\n"
        f"Write {n} questions that this text answers. Each question must make sense on its own to a reader who has "
        "never seen the text: name the people, places and things instead of saying 'the text', 'the passage' or "
        f"'the author'. Write one question per line, numbered 1 to {n}."
    )


def answer_prompt(text: str, question: str) -> str:
    return (
        f"Background:\n{text}\n\nAnswer the question using the background. Answer directly, as an expert would, "
        f"without mentioning the background or any text.\n\nQuestion: {question}"
    )


def compile_leak_patterns(patterns: list[str]) -> list[re.Pattern[str]]:
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(f"self_qa.leak_patterns[{i}]: invalid regex {pattern!r}: {exc}") from None
    return compiled


class SelfQA:
    def __init__(self, run: Run, cfg: SelfQAConfig) -> None:
        self.run, self.cfg = run, cfg
        self.documents = load_documents(cfg.documents)
        self.leaks = compile_leak_patterns(cfg.leak_patterns)
        self.index = NearDuplicateIndex(threshold=cfg.rouge_threshold)
        self.tokenizer: Any = None
        if cfg.tokenizer:
            from lmforge.models.adapters import load_plain_tokenizer

            self.tokenizer = load_plain_tokenizer(cfg.tokenizer)

    def use_tokenizer(self, tokenizer: Any) -> None:
        """The in-process model's tokenizer measures chunks unless self_qa.tokenizer names another."""
        if self.tokenizer is None:
            self.tokenizer = tokenizer

    def leak(self, text: str) -> bool:
        return any(p.search(text) for p in self.leaks)

    def generate(self) -> None:
        chunks = chunk_documents(self.documents, self.tokenizer, self.cfg.chunk_tokens, self.cfg.chunk_overlap)
        chunks = chunks[: self.cfg.max_chunks] if self.cfg.max_chunks is not None else chunks
        for start in range(0, len(chunks), self.cfg.chunks_per_wave):
            if self.run.stopped:
                return
            self.answer(self.questions(chunks[start : start + self.cfg.chunks_per_wave]))

    def questions(self, chunks: list[Any]) -> list[tuple[Any, Request, str, str]]:
        """(chunk, question request, question key, question) of every kept question, in order."""
        n = self.cfg.questions_per_chunk
        requests = [
            self.run.request(f"self-qa/{c.id}/questions", QUESTIONS_ID, questions_prompt(c.text, n), creative=True)
            for c in chunks
        ]
        kept = []
        for chunk, request, reply in zip(chunks, requests, self.run.ask(requests), strict=False):
            if self.run.refused(reply, request):
                continue
            items = numbered_items(reply.text)
            if not items:
                self.run.store.reject("unparsable_questions", reply.text, key=request.key, chunk=chunk.id)
                continue
            if reply.finish == "length":
                self.run.store.reject("truncated_question", items.pop(), key=request.key, chunk=chunk.id)
            for j, question in enumerate(items):
                problem = self.question_problem(question)
                if problem:
                    self.run.store.reject(problem, question, key=request.key, chunk=chunk.id)
                    continue
                self.index.add(question)
                kept.append((chunk, request, f"self-qa/{chunk.id}/q{j}", question))
        return kept

    def question_problem(self, question: str) -> str | None:
        if not question.rstrip().endswith(("?", "？")):
            return "not_a_question"
        words = word_count(question)
        if words < self.cfg.min_words:
            return "question_too_short"
        if words > self.cfg.max_words:
            return "question_too_long"
        if self.leak(question):
            return "question_refers_to_source"
        if self.index.is_duplicate(question):
            return "duplicate_question"
        return None

    def answer(self, questions: list[tuple[Any, Request, str, str]]) -> None:
        requests = [
            self.run.request(f"{key}/answer", ANSWER_ID, answer_prompt(chunk.text, q), creative=False)
            for chunk, _, key, q in questions
        ]
        for (chunk, asked, _, question), request, reply in zip(
            questions, requests, self.run.ask(requests), strict=False
        ):
            if self.run.refused(reply, request):
                continue
            answer = reply.text.strip()
            problem = self.answer_problem(answer, reply.finish)
            if problem:
                self.run.store.reject(problem, answer, key=request.key, question=question, chunk=chunk.id)
                continue
            source = {"chunk": chunk.id, "document": chunk.doc_id, "chars": [chunk.start_char, chunk.end_char]}
            self.run.store.record(question, "", answer, self.run.provenance([asked, request], None, source))

    def answer_problem(self, answer: str, finish: str) -> str | None:
        if not answer:
            return "empty_answer"
        if finish == "length":
            return "answer_truncated"
        if word_count(answer) > self.cfg.max_answer_words:
            return "answer_too_long"
        if self.leak(answer):
            return "answer_refers_to_source"
        return None
