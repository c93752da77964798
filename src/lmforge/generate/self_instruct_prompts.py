"""The Self-Instruct prompts (our wording of the reference pipeline's four prompt kinds) and their reply parsers.

Prompt ids name the template in every record's provenance; change the text, change the id.
"""

from __future__ import annotations

import re

from lmforge.generate.parsing import numbered_items

PROPOSE_ID = "self-instruct/propose-v1"
CLASSIFY_ID = "self-instruct/classify-v1"
INPUT_FIRST_ID = "self-instruct/input-first-v1"
OUTPUT_FIRST_ID = "self-instruct/output-first-v1"


def propose_prompt(instructions: list[str]) -> str:
    """A numbered list of in-context tasks left open at the next number, for the model to continue."""
    lines = [f"{i}. {_clean(text)}" for i, text in enumerate(instructions, 1)]
    return (
        "Come up with a series of new, diverse tasks a text-only assistant could do. Continue the numbered list "
        "below with new tasks, one per line, each different from the others.\n\n"
        + "\n".join(lines)
        + f"\n{len(instructions) + 1}."
    )


def proposed_instructions(reply: str, first_number: int) -> list[str]:
    """New tasks in a continuation reply. The reply may start right after the open number (its first item has no
    number) or repeat it; either way items are the list items, in order."""
    text = reply if re.match(r"\s*\d+\s*[.)]", reply) else f"{first_number}. {reply.lstrip()}"
    return [_clean(item) for item in numbered_items(text)]


def _clean(instruction: str) -> str:
    """Whitespace collapsed, a trailing colon dropped, first letter capitalised (as the reference does)."""
    text = " ".join(instruction.split()).rstrip(":").strip()
    return text[:1].upper() + text[1:]


CLASSIFY_EXAMPLES = [
    ("Given a movie review, tell whether it is positive or negative.", "Yes"),
    ("Write a short poem about the sea.", "No"),
    ("Decide whether the email is spam.", "Yes"),
    ("Suggest three names for a coffee shop.", "No"),
    ("Which of the two sentences is grammatically correct? Answer 1 or 2.", "Yes"),
    ("Explain how a rainbow forms.", "No"),
]


def classify_prompt(instruction: str) -> str:
    """Few-shot yes/no: can the task be seen as classification with a finite set of output labels?"""
    shots = "\n\n".join(f"Task: {task}\nIs it classification? {label}" for task, label in CLASSIFY_EXAMPLES)
    return (
        "Can the following task be regarded as a classification task with finite output labels?\n\n"
        f"{shots}\n\nTask: {instruction}\nIs it classification?"
    )


def is_classification(reply: str) -> bool | None:
    """True / False from a yes/no reply, None when it is neither."""
    word = re.match(r"\W*(\w+)", reply)
    answer = word.group(1).lower() if word else ""
    return {"yes": True, "no": False, "是": True, "否": False}.get(answer)


def input_first_prompt(instruction: str) -> str:
    """Instances for a generation task: each example's input first, then its output (no input: output only)."""
    return (
        "Come up with examples for the task. For each example write the input first, then the output. If the task "
        "needs no input, write only the output.\n\n"
        "Task: Which exercises help to lose belly fat at home?\n"
        "Output: Lying leg raises, planks, crunches and jogging in place.\n\n"
        "Task: Extract all the country names in the paragraph, separated by commas.\n"
        "Example 1\nInput: Ana flew from Brazil to Spain, then took a train to France.\n"
        "Output: Brazil, Spain, France\n"
        "Example 2\nInput: The river runs through Germany and Austria.\nOutput: Germany, Austria\n\n"
        f"Task: {instruction}"
    )


def output_first_prompt(instruction: str) -> str:
    """Instances for a classification task: a class label first, then an input with that label, so every label
    gets inputs (input-first generation drifts toward one label)."""
    return (
        "Given the classification task, list the possible class labels, then write an input for each label.\n\n"
        "Task: Classify the sentiment of the sentence as positive or negative.\n"
        "Class label: Positive\nInput: I loved every minute of this film.\n"
        "Class label: Negative\nInput: The service was slow and the food was cold.\n\n"
        "Task: Is the number even or odd?\n"
        "Class label: Even\nInput: 28\nClass label: Odd\nInput: 13\n\n"
        f"Task: {instruction}"
    )


def instance_prompt(instruction: str, classification: bool) -> tuple[str, str]:
    """(prompt id, text) of a task's instance request: output-first for classification tasks, else input-first."""
    if classification:
        return OUTPUT_FIRST_ID, output_first_prompt(instruction)
    return INPUT_FIRST_ID, input_first_prompt(instruction)


def instances_input_first(reply: str, truncated: bool) -> list[tuple[str, str]]:
    """(input, output) pairs from "Example k / Input: / Output:" blocks, or one "Output:" (or bare text) reply.
    A reply cut by the token limit loses its last instance (it may be cut)."""
    blocks = [b for b in re.split(r"(?:^|\n)\s*Example\s*\d+\s*:?\s*\n?", reply) if b.strip()]
    pairs = []
    for block in blocks:
        head, sep, output = block.partition("Output:")
        if not sep:
            head, output = "", block
        pairs.append((_field(head, "Input:"), output.strip()))
    return pairs[:-1] if truncated else pairs


def instances_output_first(reply: str, truncated: bool) -> list[tuple[str, str]]:
    """(input, label) pairs from "Class label: X / Input: ..." blocks (the label is the output)."""
    pairs = []
    for block in re.split(r"Class label:", reply)[1:]:
        label, _, rest = block.strip().partition("\n")
        pairs.append((_field(rest, "Input:"), label.strip()))
    return pairs[:-1] if truncated else pairs


def _field(text: str, name: str) -> str:
    text = text.strip()
    return text[len(name) :].strip() if text.startswith(name) else text
