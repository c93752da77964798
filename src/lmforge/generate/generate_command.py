"""`lmforge generate METHOD CONFIG`: open the generator, run the method's pipeline, write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.generate.backends import open_generator
from lmforge.generate.generate_config import GenerateConfig
from lmforge.generate.generation_run import Run
from lmforge.generate.output import REJECTS, OutputStore


def _pipeline(method: str, run: Run, cfg: GenerateConfig) -> Any:
    """The method's pipeline object (its inputs are read and checked here, before any request)."""
    if method == "self-instruct":
        from lmforge.generate.self_instruct import SelfInstruct

        return SelfInstruct(run, cfg.self_instruct)
    if method == "self-qa":
        from lmforge.generate.self_qa import SelfQA

        return SelfQA(run, cfg.self_qa)
    from lmforge.generate.self_kg import SelfKG

    return SelfKG(run, cfg.self_kg)


def needs_model(method: str, cfg: GenerateConfig) -> bool:
    return method != "self-kg" or cfg.self_kg.paraphrase or cfg.self_kg.model_answers


def generate_command(method: str, cfg: GenerateConfig, resume: bool, dry_run: bool) -> dict[str, Any]:
    """Run `method`; returns the report (also written to output.dir/report.json). A generator failure is raised
    after the report is written, so what was generated before it stays usable and `--resume` continues it.

    Order of checks: the method's inputs (seeds, documents, triples), then the generator (reachable, key, model),
    and only then is anything written to output.dir."""
    run = Run(cfg, method, dry_run)
    pipeline = _pipeline(method, run, cfg)
    if dry_run:
        if cfg.generator.in_process and cfg.generator.model and hasattr(pipeline, "use_tokenizer"):
            from lmforge.models.adapters import load_plain_tokenizer, tokenizer_source

            source = tokenizer_source(cfg.generator.model, cfg.generator.adapter)  # chunks as the real run cuts them
            pipeline.use_tokenizer(load_plain_tokenizer(source, cfg.generator.trust_remote_code))
        pipeline.generate()
        return run.summary()
    if needs_model(method, cfg):
        run.generator = open_generator(cfg.generator)
        if hasattr(pipeline, "use_tokenizer"):
            pipeline.use_tokenizer(getattr(run.generator, "tokenizer", None))
    run.store = store = OutputStore(cfg.output.dir, cfg.output.name, cfg.output.format, resume)
    try:
        pipeline.generate()
    finally:
        run.close()
        summary = run.summary()
        if run.generator is not None:
            run.generator.close()
        report = store.write_report(summary)
        store.close()
    if run.failure is not None:
        raise type(run.failure)(
            f"{run.failure}\n{store.accepted} records so far are kept in {store.dataset} (report {cfg.output.dir}/"
            "report.json); fix the endpoint and rerun with --resume to continue"
        )
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['records']} records -> {report['dataset']} (catalogue {report['catalog']})",
        f"stopped: {report['stopped']}; requests: {report['requests']}; tokens: {report['tokens']}",
    ]
    if report["rejected"]:
        lines.append(f"rejected {report['rejected_total']}:")
        for reason, count in report["rejected"].items():
            example = report["reject_examples"].get(reason, [""])[0].replace("\n", " ")
            lines.append(f"  {reason}: {count}  e.g. {example[:100]!r}")
        lines.append(f"  (every reject with its reason: {Path(report['dataset']).parent / REJECTS})")
    if report.get("notes"):
        lines += [f"note: {what}: {count}" for what, count in report["notes"].items()]
    lines.append(f"train on it: data.catalog={report['catalog']} data.datasets=[{report['name']}]")
    return "\n".join(lines)
