"""`lmforge data preview`: show encoded examples as the model will see them, trained spans marked.

Trained tokens are wrapped in «» (and coloured green on a terminal), so a wrong mask is visible at a glance.
"""

from __future__ import annotations

import json
import sys
from itertools import groupby
from typing import TYPE_CHECKING, Any

from lmforge.config.schema import RunConfig
from lmforge.config.stages import stage_spec
from lmforge.data.encode import IGNORE_INDEX
from lmforge.data.pairwise import row_sides

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate

_GREEN, _RESET = "\033[32m", "\033[0m"


def render_example(row: dict[str, list[int]], tokenizer: Any, colour: bool = False) -> str:
    """Decode a row span by span; spans with labels (trained) are wrapped in «» markers."""
    pairs = list(zip(row["input_ids"], row["labels"], strict=True))
    parts = []
    for trained, group in groupby(pairs, key=lambda p: p[1] != IGNORE_INDEX):
        text = tokenizer.decode([p[0] for p in group], skip_special_tokens=False)
        if trained:
            text = f"«{_GREEN}{text}{_RESET}»" if colour else f"«{text}»"
        parts.append(text)
    return "".join(parts)


def dump_rows(rows: Any, path: str) -> int:
    """Every encoded training row in dataset order as JSON lines of input_ids and labels."""
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            for name, side in row_sides(row):  # preference pairs: one line per side, named
                record = {"input_ids": list(side["input_ids"]), "labels": list(side["labels"])}
                fh.write(json.dumps({"side": name, **record} if name else record) + "\n")
            count += 1
    return count


def _load_tokenizer(cfg: RunConfig) -> Any:
    try:
        from lmforge.models.model_loading import load_tokenizer
    except ImportError:  # the models area may not be installed in a partial checkout
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code)
    return load_tokenizer(cfg.model)


def warn_if_template_differs(template: ChatTemplate, tokenizer: Any) -> None:
    """The same check as training: a template that renders differently from the tokenizer's own is worth a look."""
    from lmforge.templates import check_template_matches_tokenizer

    mismatch = check_template_matches_tokenizer(template, tokenizer)
    if mismatch:
        print(f"warning: {mismatch}")


def preview_command(cfg: RunConfig, n: int, dump: str | None) -> None:
    """Print n decoded examples and the data report; optionally dump every encoded example."""
    from lmforge.data.pipeline import build_datasets

    tokenizer = _load_tokenizer(cfg)
    spec = stage_spec(cfg.stage)
    if spec.is_online_rl:  # prompts only: nothing is trained on, the prompts are what gets sampled from
        from lmforge.data.rl_prompts import preview_prompts

        preview_prompts(cfg, tokenizer, n, dump)
        return
    template = None
    if spec.needs_template:
        from lmforge.templates import get_template

        template = get_template(cfg.data.template, tokenizer, cfg.data.template_options)
        warn_if_template_differs(template, tokenizer)
    bundle = build_datasets(cfg, tokenizer, template, record=False)
    colour = sys.stdout.isatty()
    for i, row in enumerate(bundle.train):
        if i >= n:
            break
        for name, side in row_sides(row):
            trained = sum(label != IGNORE_INDEX for label in side["labels"])
            what = f" {name}" if name else ""
            print(f"--- example {i}{what}: {len(side['input_ids'])} tokens, {trained} trained («» marks trained text)")
            print(render_example(side, tokenizer, colour))
    print("\n".join(bundle.report.lines()))
    for bad in bundle.report.bad_rows[:5]:
        print(f"skipped malformed row: {bad['error']}")
    if dump:
        print(f"wrote {dump_rows(bundle.train, dump)} encoded examples to {dump}")
