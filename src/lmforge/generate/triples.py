"""Knowledge-graph triples for Self-KG: read them, group them by entity, and turn them into grounded questions.

The pattern table turns each (entity, relation) into one question whose answer lists every tail of that relation, so
a question never has a partial answer; it needs no model (a model may paraphrase the questions for variety). Every
QAPair keeps the triples it was made from, and `answer_supported` checks an answer (ours or a model's) against them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.evaluation.metrics import CJK_RUN
from lmforge.generate.documents import read_csv, read_text_file
from lmforge.utils.errors import DataError

TRIPLE_SUFFIXES = (".tsv", ".txt", ".csv", ".jsonl")
_FIELD_NAMES = (("head", "relation", "tail"), ("subject", "predicate", "object"))


@dataclass(frozen=True)
class Triple:
    """`source`/`line`: the file and line (1-based; the CSV header is line 1) the triple was read from."""

    head: str
    relation: str
    tail: str
    source: str
    line: int


@dataclass(frozen=True)
class QAPair:
    """A question, its answer, and the triples both were made from (for provenance and `answer_supported`)."""

    question: str
    answer: str
    triples: tuple[Triple, ...]


# ---------------------------------------------------------------------------------------------------------- loading


def _tsv_triples(path: Path) -> list[Triple]:
    triples = []
    for line_no, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3 or not all(fields):
            raise DataError(
                f"{path}:{line_no}: expected head<TAB>relation<TAB>tail (3 non-empty tab-separated fields), got "
                f"{len(fields)} field(s): {line[:80]!r}"
            )
        head, relation, tail = fields
        triples.append(Triple(head, relation, tail, source=str(path), line=line_no))
    return triples


def _fields(row: dict[str, Any], where: str) -> tuple[str, str, str]:
    """(head, relation, tail) from a row keyed by either naming; values must be non-empty strings."""
    expected = "fields head, relation, tail (or subject, predicate, object) holding non-empty strings"
    keys = {k.strip().lower() if isinstance(k, str) else k: k for k in row}
    for names in _FIELD_NAMES:
        if all(name in keys for name in names):
            values = [row[keys[name]] for name in names]
            if not all(isinstance(v, str) and v.strip() for v in values):
                raise DataError(f"{where}: expected {expected}; got {json.dumps(values, ensure_ascii=False)[:120]}")
            head, relation, tail = (v.strip() for v in values)
            return head, relation, tail
    raise DataError(f"{where}: expected {expected}; got fields {sorted(map(str, row))}")


def _csv_triples(path: Path) -> list[Triple]:
    header, rows = read_csv(path)
    return [
        Triple(*_fields(dict(zip(header, cells, strict=True)), f"{path}:{line_no}"), source=str(path), line=line_no)
        for line_no, cells in rows
    ]


def _jsonl_triples(path: Path) -> list[Triple]:
    triples = []
    for line_no, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{where}: invalid JSON ({exc.msg}, column {exc.colno}); expected one object per line such as "
                '{"head": ..., "relation": ..., "tail": ...}'
            ) from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with head, relation, tail; got {type(row).__name__}")
        triples.append(Triple(*_fields(row, where), source=str(path), line=line_no))
    return triples


def load_triples(path: str | Path) -> list[Triple]:
    """Triples from a `head<TAB>relation<TAB>tail` file (.tsv/.txt), a CSV with a header naming head, relation,
    tail (or subject, predicate, object), JSON Lines with those fields, or a folder of such files (recursive,
    sorted by path; other files, e.g. a README, are ignored)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TRIPLE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: folder holds no triple files ({', '.join(TRIPLE_SUFFIXES)})")
    elif path.suffix.lower() in TRIPLE_SUFFIXES:
        files = [path]
    else:
        raise DataError(f"{path}: not a triple file; expected one of {', '.join(TRIPLE_SUFFIXES)} or a folder")
    readers = {".csv": _csv_triples, ".jsonl": _jsonl_triples}
    return [t for file in files for t in readers.get(file.suffix.lower(), _tsv_triples)(file)]


def group_by_entity(triples: Iterable[Triple]) -> dict[str, list[Triple]]:
    """Triples by head entity (the entity the questions are about), in first-seen order."""
    groups: dict[str, list[Triple]] = {}
    for t in triples:
        groups.setdefault(t.head, []).append(t)
    return groups


# --------------------------------------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class Pattern:
    """`question` and `premise` use {head}; `answer` uses {head} and {tails}. `premise` states that the head has the
    relation to an unnamed "something" ("Virus causes something."), to ask about a second hop: the second question
    then asks about "that", so no relation phrase is nested inside another ("a result of a result of")."""

    question: str
    answer: str
    premise: str


def _does(verb: str, verb_s: str) -> Pattern:
    return Pattern(f"What does {{head}} {verb}?", f"{{head}} {verb_s} {{tails}}.", f"{{head}} {verb_s} something.")


def _is(phrase: str) -> Pattern:
    return Pattern(
        f"What is {{head}} {phrase}?", f"{{head}} is {phrase} {{tails}}.", f"{{head}} is {phrase} something."
    )


# The 46 relations of the UMLS semantic network (../shared/data/knowledge_graph), read as "head relation tail".
PATTERNS: dict[str, Pattern] = {
    "isa": Pattern("What kind of thing is {head}?", "{head} is a kind of {tails}.", "{head} is a kind of something."),
    "occurs_in": Pattern("Where does {head} occur?", "{head} occurs in {tails}.", "{head} occurs in something."),
    "assesses_effect_of": _does("assess the effect of", "assesses the effect of"),
    **{
        rel: _does(verb, rel.replace("_", " "))
        for rel, verb in {
            "affects": "affect",
            "analyzes": "analyze",
            "carries_out": "carry out",
            "causes": "cause",
            "co-occurs_with": "co-occur with",
            "complicates": "complicate",
            "consists_of": "consist of",
            "contains": "contain",
            "diagnoses": "diagnose",
            "disrupts": "disrupt",
            "exhibits": "exhibit",
            "indicates": "indicate",
            "interacts_with": "interact with",
            "interconnects": "interconnect",
            "manages": "manage",
            "measures": "measure",
            "performs": "perform",
            "practices": "practice",
            "precedes": "precede",
            "prevents": "prevent",
            "produces": "produce",
            "surrounds": "surround",
            "treats": "treat",
            "uses": "use",
        }.items()
    },
    **{
        rel: _is(phrase)
        for rel, phrase in {
            "adjacent_to": "adjacent to",
            "associated_with": "associated with",
            "conceptual_part_of": "conceptually part of",
            "conceptually_related_to": "conceptually related to",
            "connected_to": "connected to",
            "degree_of": "a degree of",
            "derivative_of": "a derivative of",
            "developmental_form_of": "a developmental form of",
            "evaluation_of": "an evaluation of",
            "ingredient_of": "an ingredient of",
            "issue_in": "an issue in",
            "location_of": "the location of",
            "manifestation_of": "a manifestation of",
            "measurement_of": "a measurement of",
            "method_of": "a method of",
            "part_of": "part of",
            "process_of": "a process of",
            "property_of": "a property of",
            "result_of": "a result of",
        }.items()
    },
}
# Any other relation: named as it is, so the question stays true whatever the relation means.
_GENERIC = Pattern(
    'Which entities are linked to {head} by the relation "{relation}"?',
    '{head} is linked by "{relation}" to {tails}.',
    '{head} is linked by "{relation}" to something.',
)
# Chinese chains the relations as nouns (糖尿病的并发症的症状是什么？), which reads naturally: `premise` is the noun
# phrase of the first hop
_GENERIC_ZH = Pattern("{head}的{relation}是什么？", "{head}的{relation}是{tails}。", "{head}的{relation}")
#: what the second question of an English two-hop pair calls the middle entity its premise introduced
_REFERENT = "that"


def _chinese(*texts: str) -> bool:
    return any(CJK_RUN.search(t) for t in texts)


def entity_name(name: str) -> str:
    """How an entity or relation id reads in a sentence: `acquired_abnormality` -> `acquired abnormality`."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip()


def _pattern(relation: str, chinese: bool) -> Pattern:
    if chinese:
        return _GENERIC_ZH
    return PATTERNS.get(relation.strip().lower().replace(" ", "_"), _GENERIC)


def _listing(items: Sequence[str], chinese: bool) -> str:
    if len(items) <= 1:
        return "".join(items)
    if chinese:
        return "、".join(items[:-1]) + "和" + items[-1]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fill(template: str, head: str, relation: str, tails: Sequence[str] = (), chinese: bool = False) -> str:
    return template.format(head=head, relation=entity_name(relation), tails=_listing(tails, chinese))


def _by_relation(triples: Iterable[Triple]) -> dict[str, list[Triple]]:
    """Triples by relation, first-seen order, a repeated (head, relation, tail) kept once."""
    groups: dict[str, list[Triple]] = {}
    for t in triples:
        group = groups.setdefault(t.relation, [])
        if all(t.tail != other.tail for other in group):
            group.append(t)
    return groups


def pattern_questions(entity: str, triples: Iterable[Triple]) -> list[QAPair]:
    """One question per relation of `entity` (triples with another head are ignored); its answer lists all tails."""
    pairs = []
    head = entity_name(entity)
    for relation, group in _by_relation(t for t in triples if t.head == entity).items():
        tails = [entity_name(t.tail) for t in group]
        chinese = _chinese(entity, relation, *tails)
        pattern = _pattern(relation, chinese)
        question = _sentence(_fill(pattern.question, head, relation))
        answer = _sentence(_fill(pattern.answer, head, relation, tails, chinese))
        pairs.append(QAPair(question, answer, tuple(group)))
    return pairs


# -------------------------------------------------------------------------------------------------------- multi-hop


def two_hop_paths(triples: Sequence[Triple], limit: int) -> list[tuple[Triple, Triple]]:
    """Up to `limit` paths a -> b where a.tail is b.head, in triple order; paths that come back to a's head
    (x r y, y r' x) are left out, as their question would answer itself."""
    by_head = group_by_entity(triples)
    paths: list[tuple[Triple, Triple]] = []
    for first in triples:
        for second in by_head.get(first.tail, ()):
            if second.tail == first.head:
                continue
            if len(paths) >= limit:
                return paths
            paths.append((first, second))
    return paths


def two_hop_question(head: str, rel1: str, rel2: str, chinese: bool = False) -> str:
    """The question about a path head -rel1-> ? -rel2-> ?: the first hop as a premise, then the second hop's question
    about it ("Virus causes something. What does that affect?"); in Chinese one noun chain
    (糖尿病的并发症的症状是什么？)."""
    p1, p2 = _pattern(rel1, chinese), _pattern(rel2, chinese)
    premise = _fill(p1.premise, entity_name(head), rel1)
    if chinese:
        return _fill(p2.question, premise, rel2)
    return f"{_sentence(premise)} {_sentence(_fill(p2.question, _REFERENT, rel2))}"


def multi_hop_questions(paths: Iterable[tuple[Triple, Triple]]) -> list[QAPair]:
    """One question per (head, first relation, second relation) (`two_hop_question`); the answer walks every path
    ("A causes B, and B affects C and D.") and keeps all of their triples."""
    groups: dict[tuple[str, str, str], list[tuple[Triple, Triple]]] = {}
    for first, second in paths:
        groups.setdefault((first.head, first.relation, second.relation), []).append((first, second))
    pairs = []
    for (head, rel1, rel2), group in groups.items():
        chinese = _chinese(head, rel1, rel2, *(t.tail for path in group for t in path))
        p1, p2 = _pattern(rel1, chinese), _pattern(rel2, chinese)
        question = two_hop_question(head, rel1, rel2, chinese)
        middles = _by_relation(first for first, _ in group)[rel1]
        sentences = []
        for middle in middles:
            seconds = _by_relation(s for f, s in group if f.tail == middle.tail)[rel2]
            hop1 = _fill(p1.answer, entity_name(head), rel1, [entity_name(middle.tail)], chinese)
            hop2 = _fill(p2.answer, entity_name(middle.tail), rel2, [entity_name(s.tail) for s in seconds], chinese)
            joiner = "，" if chinese else ", and "
            sentences.append(_sentence(hop1.rstrip(".。")) + joiner + hop2)
        used = tuple(t for path in group for t in path)
        pairs.append(QAPair(question, ("" if chinese else " ").join(sentences), tuple(dict.fromkeys(used))))
    return pairs


# ----------------------------------------------------------------------------------------------------- verification


def _normalise(text: str) -> str:
    """Lower-cased, `_`/`-`/punctuation as spaces, whitespace collapsed (CJK text is kept as it is)."""
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def _mention(entity: str) -> re.Pattern[str]:
    """An entity name as whole words, each word also in a plural form (cell -> cells, process -> processes)."""
    words = _normalise(entity).split()
    if _chinese(entity):
        return re.compile(re.escape("".join(words)))
    return re.compile(r"\b" + r" ".join(re.escape(w) + r"(?:s|es)?" for w in words) + r"\b")


def answer_supported(answer: str, triples: Sequence[Triple]) -> bool:
    """True when `answer` mentions every tail entity of `triples` (normalised whole-word match; for Chinese, the
    answer with spaces and punctuation removed contains the tail)."""
    if not triples:
        raise ValueError("answer_supported needs the triples the answer must be grounded in")
    text = _normalise(answer)
    compact = text.replace(" ", "")
    for t in triples:
        pattern = _mention(t.tail)
        if not pattern.search(compact if _chinese(t.tail) else text):
            return False
    return True
