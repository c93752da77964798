"""The `lmforge` command line. Subcommands only; each imports its heavy machinery when it runs.

Keeping torch/transformers out of module import time is what lets `lmforge --help` answer instantly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lmforge import __version__
from lmforge.utils.errors import LmforgeError

CONFIG_HELP = "YAML run config; `section.key=value` overrides follow it (e.g. train.learning_rate=1e-4)."


def cmd_train(args: argparse.Namespace) -> int:
    from lmforge.config import load_config

    cfg = load_config(args.config, args.overrides)  # config errors surface before the heavy imports
    from lmforge.train import run_training

    run_training(cfg, resume=args.resume or args.force_resume, force_resume=args.force_resume)
    return 0


def cmd_data_preview(args: argparse.Namespace) -> int:
    from lmforge.config import load_config

    cfg = load_config(args.config, args.overrides)
    from lmforge.data.preview import preview_command

    preview_command(cfg, n=args.n, dump=args.dump)
    return 0


def cmd_init_model(args: argparse.Namespace) -> int:
    from lmforge.models.init import init_model

    init_model(
        output=args.output,
        arch=args.arch,
        size=args.size,
        corpus=args.corpus or [],
        template=args.template,
        seed=args.seed,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lmforge.export import export_merged

    meta = export_merged(
        base=args.model,
        adapter=args.adapter,
        output=args.output,
        dtype=args.dtype,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        qlora_base=args.qlora_base,
    )
    checks = ", ".join(f"{k} {v:.3g}" for k, v in meta["verification"].items())
    print(f"exported to {args.output} ({args.dtype}); max abs logit diffs: {checks}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from lmforge.inference.chat import ChatSession, answer_prompts, interactive_chat
    from lmforge.inference.engine import GenerationOptions, load_engine

    options = GenerationOptions(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )
    engine = load_engine(args.model, args.adapter, args.template, args.dtype, args.allow_unsafe_pickle)
    if args.prompt:
        answer_prompts(engine, args.prompt, options, args.system, sys.stdout)
    elif args.interactive or sys.stdin.isatty():
        interactive_chat(ChatSession(engine, options, args.system), sys.stdin, sys.stdout)
    else:  # piped input: one prompt per non-empty line
        answer_prompts(
            engine, (line.rstrip("\n") for line in sys.stdin if line.strip()), options, args.system, sys.stdout
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from lmforge.inference.limits import check_bind_policy, limit_fields

    api_key = _read_api_key(args)
    banner = check_bind_policy(args.host, api_key, args.insecure_no_auth)  # refuse before loading the model (D6)
    if args.backend == "vllm":
        from lmforge.inference.backends import require_vllm

        require_vllm()
    limits = {name: getattr(args, name) for name, *_ in limit_fields() if getattr(args, name) is not None}
    import uvicorn

    from lmforge.inference.engine import load_engine
    from lmforge.inference.server import create_app

    engine = load_engine(args.model, args.adapter, args.template, args.dtype, args.allow_unsafe_pickle)
    name = args.model_name or args.model.rstrip("/").rsplit("/", 1)[-1]
    app = create_app(engine, api_key=api_key, model_name=name, **limits)
    if banner:
        print(banner, file=sys.stderr)
    auth = "API key required" if api_key else "no authentication"
    print(f"serving {name!r} on http://{args.host}:{args.port}/v1 ({auth})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _read_api_key(args: argparse.Namespace) -> str | None:
    """--api-key, or the first line of --api-key-file (keeps the key out of the process list)."""
    if args.api_key_file:
        try:
            with open(args.api_key_file, encoding="utf-8") as handle:
                key = handle.readline().strip()
        except OSError as exc:
            raise LmforgeError(f"--api-key-file {args.api_key_file}: {exc.strerror}") from exc
        if not key:
            raise LmforgeError(f"--api-key-file {args.api_key_file}: the first line is empty")
        return key
    return args.api_key or None


def cmd_eval(args: argparse.Namespace) -> int:
    import os

    from lmforge.evaluation.config import load_eval_config

    overrides = list(args.overrides)
    config = args.config
    if config and "=" in config and not os.path.isfile(config):  # no YAML file given, overrides only
        config, overrides = None, [config, *overrides]
    flags = {"task": args.task, "model.name_or_path": args.model, "model.adapter": args.adapter}
    flags |= {"model.template": args.template, "output_dir": args.output_dir}
    overrides += [f"{key}={value}" for key, value in flags.items() if value is not None]
    cfg = load_eval_config(config, overrides)  # config errors surface before torch is imported
    from lmforge.evaluation.results import format_table
    from lmforge.evaluation.runner import run_evaluation

    results = run_evaluation(cfg)
    print(format_table(results))
    print(f"results: {cfg.results_path}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from lmforge.config.config_reference import config_reference
    from lmforge.config.stages import STAGE_SPECS

    p = sub.add_parser(
        "train",
        help=f"run a training stage ({', '.join(STAGE_SPECS)}) from a YAML config",
        description="Run one training stage from a YAML config with dotted key=value overrides.\n\n"
        "Example:\n  lmforge train configs/sft/lora.yaml train.max_steps=10 data.cutoff_len=256\n\n"
        + config_reference(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, applied in order")
    p.add_argument(
        "--resume",
        action="store_true",
        help="resume from the newest complete checkpoint in train.output_dir (incomplete ones are skipped)",
    )
    p.add_argument(
        "--force-resume",
        action="store_true",
        help="resume even though batch/data/model/method settings changed since the run started (warns with a diff)",
    )
    p.set_defaults(func=cmd_train)


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets as the trainer will see them")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="{preview}")
    prev = data_sub.add_parser(
        "preview",
        help="print encoded examples with trained spans marked, and kept/truncated/dropped counts",
        description="Encode the config's datasets exactly as training would, print N examples decoded back to "
        "text with the trained (label) spans marked, and report how many examples were kept, truncated and "
        "dropped, with reasons.",
    )
    prev.add_argument("config", help=CONFIG_HELP)
    prev.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    prev.add_argument("--n", type=int, default=3, help="number of examples to print (default 3)")
    prev.add_argument(
        "--dump",
        metavar="FILE.jsonl",
        help='write every encoded training example in order as {"input_ids": [...], "labels": [...]} lines',
    )
    prev.set_defaults(func=cmd_data_preview)


def cmd_tokenizer_extend(args: argparse.Namespace) -> int:
    from lmforge.models.vocab import extend_tokenizer

    result = extend_tokenizer(args.base, args.corpus, args.add, args.output)
    pieces = ", ".join(list(result.added)[:10])
    print(
        f"added {len(result.added)} pieces to the {result.base_size}-piece vocabulary (existing ids unchanged) -> "
        f"{result.output}\nfirst new pieces: {pieces}\ntrain with model.tokenizer_name_or_path={result.output} and "
        "method.modules_to_save=[embed_tokens,lm_head] (lora) so the new embedding rows learn"
    )
    return 0


def _add_tokenizer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="tokenizer tools: extend the vocabulary with domain pieces")
    tok_sub = p.add_subparsers(dest="tokenizer_command", required=True, metavar="{extend}")
    ext = tok_sub.add_parser(
        "extend",
        help="learn new BPE pieces on a domain corpus and append them (existing ids and tokenisations unchanged)",
        description="Train new BPE pieces on the corpus with the base tokenizer's own pre-tokenizer, append them "
        "after every existing id (merges after all old merges), save the extended tokenizer folder and check "
        "that old ids are unchanged and texts round-trip.",
    )
    ext.add_argument("--base", required=True, help="folder of the base (fast, BPE) tokenizer or model")
    ext.add_argument("--corpus", required=True, nargs="+", metavar="FILE", help="UTF-8 text files, one text a line")
    ext.add_argument("--add", required=True, type=int, metavar="N", help="number of new pieces to add")
    ext.add_argument("--output", required=True, help="new folder for the extended tokenizer")
    ext.set_defaults(func=cmd_tokenizer_extend)


def cmd_templates(args: argparse.Namespace) -> int:
    from lmforge.templates import template_table

    rows = [("name", "aliases", "fits"), *template_table()]
    width = [max(len(row[k]) for row in rows) for k in range(2)]
    for name, aliases, models in rows:
        print(f"{name:<{width[0]}}  {aliases:<{width[1]}}  {models}")
    print("\nauto: the tokenizer's own chat template (data.template: auto, the default)")
    return 0


def _add_templates(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "templates",
        help="list the chat template names (data.template) and the models each fits",
        description="Every named chat template renders exactly what the listed models' own chat template renders; "
        "`auto` uses the tokenizer's own template. Template variables go in data.template_options.",
    )
    p.set_defaults(func=cmd_templates)


def _add_init_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init-model",
        help="build a randomly initialised model + trained BPE tokenizer (offline demos and tests)",
        description="Train a byte-level BPE tokenizer on the corpus, build a randomly initialised causal LM from a "
        "config (like AutoModelForCausalLM.from_config) and save both as a normal Hugging Face folder "
        "(safetensors, tokenizer with the named chat template). Deterministic for a given seed.",
    )
    p.add_argument("--output", required=True, help="folder to write the model and tokenizer to")
    p.add_argument("--arch", choices=["llama", "qwen2"], default="llama", help="architecture (default llama)")
    p.add_argument(
        "--size", choices=["tiny", "small"], default="tiny", help="tiny = 7M params, small = 34M (default tiny)"
    )
    p.add_argument("--corpus", nargs="+", metavar="FILE", help="text/json/jsonl files (default: bundled demo data)")
    p.add_argument("--template", default="chatml", help="chat template stored in the tokenizer (default chatml)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_init_model)


UNSAFE_PICKLE_HELP = "load .bin/.pt weights you trust (torch >= 2.6, weights_only=True); refused by default"


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="merge a LoRA adapter into its base model and write a verified safetensors folder",
        description="Merge a PEFT adapter into the base model (fp32), check on fixed inputs that the merged logits "
        "equal the adapter model's (max abs diff <= 1e-4) and differ from the base's (> 1e-3), then write sharded "
        "safetensors, the tokenizer (with chat template), generation_config (stops on the template's end-of-turn "
        "ids) and lmforge_export.json. Files are staged next to --output and renamed into place at the end.",
    )
    p.add_argument("--model", required=True, help="base model folder or hub id the adapter was trained on")
    p.add_argument("--adapter", required=True, help="adapter folder (a LoRA run's output_dir or checkpoint)")
    p.add_argument("--output", required=True, help="destination folder (must not exist unless --overwrite)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32", help="saved dtype")
    p.add_argument("--shard-size", default="2GB", help="maximum safetensors shard size (default 2GB)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    p.add_argument("--allow-unsafe-pickle", action="store_true", help=UNSAFE_PICKLE_HELP)
    p.add_argument(
        "--qlora-base",
        choices=["dequantized", "original"],
        default="dequantized",
        help="qlora adapters: merge onto the dequantised weights they were trained on (default) or the originals",
    )
    p.set_defaults(func=cmd_export)


def _add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chat",
        help="chat with a model (+ adapter): interactive, --prompt, or one prompt per stdin line",
        description="Prompts are built by the same template code as training (ids identical to the training "
        "prefix) and generation stops on every end-of-turn id of the template. Interactive when stdin is a "
        "terminal (streamed replies, history, /clear, /exit); with --prompt or piped stdin, one reply per prompt.",
    )
    p.add_argument("--model", required=True, help="model folder or hub id (a base model or an export)")
    p.add_argument("--adapter", help="PEFT adapter folder to apply (its tokenizer is used when it has one)")
    p.add_argument("--template", default="auto", help="chat template name, or auto = the tokenizer's (default)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--prompt", action="append", help="a prompt to answer (repeatable); no interactive session")
    p.add_argument("--interactive", action="store_true", help="interactive session even when stdin is not a tty")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto", help="weights dtype")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default 0.7)")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (default 0.9)")
    p.add_argument("--top-k", type=int, default=50, help="sample from the k most likely tokens (default 50)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="reply length limit (default 512)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (default 1.0)")
    p.add_argument("--seed", type=int, help="seed for sampling (reproducible replies)")
    p.add_argument("--allow-unsafe-pickle", action="store_true", help=UNSAFE_PICKLE_HELP)
    p.set_defaults(func=cmd_chat)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from lmforge.inference.limits import limit_fields

    p = sub.add_parser(
        "serve",
        help="OpenAI-compatible API server (chat/completions, completions, models) with dynamic batching",
        description="Serve a model (+ adapter) over an OpenAI-compatible HTTP API: GET /v1/models, POST "
        "/v1/chat/completions, POST /v1/completions (streaming or not), GET /health. Chat prompts are built by "
        "the training template; concurrent requests are decoded together in one batch. Binds 127.0.0.1 by "
        "default; a non-loopback --host needs --api-key (or --insecure-no-auth). See docs/serving.md.",
    )
    p.add_argument("--model", required=True, help="model folder or hub id (a base model or an export)")
    p.add_argument("--adapter", help="PEFT adapter folder to apply (its tokenizer is used when it has one)")
    p.add_argument("--template", default="auto", help="chat template name, or auto = the tokenizer's (default)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto", help="weights dtype")
    p.add_argument("--model-name", help="model id clients send and /v1/models lists (default: the folder name)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every route except /health")
    p.add_argument("--api-key-file", help="read the API key from the first line of this file instead")
    p.add_argument("--insecure-no-auth", action="store_true", help="allow a non-loopback --host without a key")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="generation backend (default hf)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--allow-unsafe-pickle", action="store_true", help=UNSAFE_PICKLE_HELP)
    for name, kind, default, text in limit_fields():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"{text} (default {default})")
    p.set_defaults(func=cmd_serve)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from lmforge.evaluation.eval_reference import eval_reference

    p = sub.add_parser(
        "eval",
        help="evaluate a model (+ adapter): perplexity, generation BLEU/ROUGE, multiple-choice benchmarks",
        description="Evaluate a model from a YAML config (configs/eval/*.yaml) and/or flags, with dotted key=value "
        "overrides. Writes OUTPUT_DIR/eval_results.json (and predictions.jsonl for generate) and prints a table.\n\n"
        "Examples:\n  lmforge eval configs/eval/mmlu.yaml model.name_or_path=runs/sft-lora/merged\n"
        "  lmforge eval --task perplexity --model runs/quickstart/base --adapter runs/sft-lora --output-dir "
        "runs/eval data.datasets=[identity_forge] data.catalog=examples/data/datasets.yaml\n\n" + eval_reference(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML eval config (optional); key=value overrides follow it")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, applied in order")
    p.add_argument("--task", choices=["perplexity", "generate", "choice"], help="same as task=...")
    p.add_argument("--model", help="model folder or hub id (model.name_or_path)")
    p.add_argument("--adapter", help="PEFT adapter folder (model.adapter)")
    p.add_argument("--template", help="chat template name or auto (model.template; use the one training used)")
    p.add_argument("--output-dir", help="where eval_results.json goes (output_dir)")
    p.set_defaults(func=cmd_eval)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_train,
    _add_data,
    _add_templates,
    _add_init_model,
    _add_tokenizer,
    _add_export,
    _add_chat,
    _add_eval,
    _add_serve,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmforge",
        description="Adapt large language models to a domain: continued pretraining (pt) and supervised "
        "fine-tuning (sft) with full, freeze or LoRA tuning. Run `lmforge COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"lmforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LmforgeError as exc:
        print(f"lmforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
