"""The `lmforge` command line. Subcommands only; each imports its heavy machinery when it runs.

Keeping torch/transformers out of module import time is what lets `lmforge --help` answer instantly.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence

from lmforge import __version__
from lmforge.utils.errors import LmforgeError, environment_error

CONFIG_HELP = "YAML run config; `section.key=value` overrides follow it (e.g. train.learning_rate=1e-4)."
TRUST_HELP = "run Python code shipped with the model or tokenizer (auto_map) after you have read it; off by default"


def _add_trust_remote_code(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)


def _trust_override(args: argparse.Namespace) -> list[str]:
    """--trust-remote-code as the config override it stands for."""
    return ["model.trust_remote_code=true"] if args.trust_remote_code else []


def cmd_train(args: argparse.Namespace) -> int:
    from lmforge.config import load_config

    cfg = load_config(args.config, [*args.overrides, *_trust_override(args)])  # errors before the heavy imports
    from lmforge.train import run_training

    run_training(cfg, resume=args.resume or args.force_resume, force_resume=args.force_resume)
    return 0


def cmd_data_preview(args: argparse.Namespace) -> int:
    from lmforge.config import load_config

    cfg = load_config(args.config, [*args.overrides, *_trust_override(args)])
    from lmforge.data.preview import preview_command

    preview_command(cfg, n=args.n, dump=args.dump)
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from lmforge.config import load_config

    cfg = load_config(args.config, args.overrides)
    from lmforge.estimate.estimate_command import estimate_command

    estimate_command(cfg, args.gpus, args.gpu, args.gpu_mem, args.measure, args.fit)
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
        overwrite=args.overwrite,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "gguf":
        return _export_gguf(args)
    if not args.adapter:
        raise LmforgeError("export --format safetensors needs --adapter (a folder to merge into --model)")
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
        trust_remote_code=args.trust_remote_code,
    )
    checks = ", ".join(f"{k} {v:.3g}" for k, v in meta["verification"].items())
    print(f"exported to {args.output} ({args.dtype}); max abs logit diffs: {checks}")
    return 0


def _export_gguf(args: argparse.Namespace) -> int:
    from lmforge.export.gguf_export import export_gguf

    meta = export_gguf(
        model=args.model,
        output=args.output,
        gguf_type=args.gguf_type,
        adapter=args.adapter,
        template=args.template,
        system=args.system,
        overwrite=args.overwrite,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        qlora_base=args.qlora_base,
    )
    checks = ", ".join(f"{k} {v:.3g}" for k, v in meta["verification"].items())
    print(f"exported {args.output}/{meta['file']} and {args.output}/Modelfile; verified: {checks}")
    print(f"run it: cd {args.output} && ollama create {meta['file'].split('.')[0]} -f Modelfile")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from lmforge.inference.chat import ChatSession, answer_prompts, interactive_chat
    from lmforge.inference.engine import GenerationOptions, load_engine

    options = GenerationOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GenerationOptions)})
    engine = load_engine(
        args.model, args.adapter, args.template, args.dtype, args.allow_unsafe_pickle, args.trust_remote_code
    )
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
    limits = {name: getattr(args, name) for name, *_ in limit_fields() if getattr(args, name) is not None}
    import uvicorn

    from lmforge.inference.engine import load_engine
    from lmforge.inference.server import create_app

    engine = load_engine(
        args.model, args.adapter, args.template, args.dtype, args.allow_unsafe_pickle, args.trust_remote_code
    )
    name = served_model_name(args.model, args.adapter, args.model_name)
    app = create_app(engine, api_key=api_key, model_name=name, **limits)
    if banner:
        print(banner, file=sys.stderr)
    auth = "API key required" if api_key else "no authentication"
    print(f"serving {name!r} on http://{args.host}:{args.port}/v1 ({auth})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def served_model_name(model: str, adapter: str | None, explicit: str | None) -> str:
    """--model-name, else the folder of what is served: the adapter's when there is one (it is the fine-tune)."""
    return explicit or (adapter or model).rstrip("/").rsplit("/", 1)[-1]


def _read_api_key(args: argparse.Namespace) -> str | None:
    """--api-key, or the first line of --api-key-file (keeps the key out of the process list)."""
    if args.api_key_file:
        from lmforge.utils.paths import read_key_file

        return read_key_file(args.api_key_file, "--api-key-file")
    return args.api_key or None


def cmd_eval(args: argparse.Namespace) -> int:
    import os

    from lmforge.evaluation.eval_config import load_eval_config

    overrides = list(args.overrides)
    config = args.config
    if config and "=" in config and not os.path.isfile(config):  # no YAML file given, overrides only
        config, overrides = None, [config, *overrides]
    flags = {"task": args.task, "model.name_or_path": args.model, "model.adapter": args.adapter}
    flags |= {"model.template": args.template, "output_dir": args.output_dir}
    overrides += [f"{key}={value}" for key, value in flags.items() if value is not None] + _trust_override(args)
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
    _add_trust_remote_code(p)
    p.set_defaults(func=cmd_train)


def cmd_data_list(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmforge.data.catalog import load_catalog

    if not Path(args.catalog).is_file():
        raise LmforgeError(f"--catalog {args.catalog}: no such file")
    catalog = load_catalog(args.catalog, args.dataset_dir)
    print("\n".join(catalog.listing()))
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets as the trainer will see them")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="{preview,list}")
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
    _add_trust_remote_code(prev)
    prev.set_defaults(func=cmd_data_preview)
    listing = data_sub.add_parser(
        "list",
        help="list the datasets a catalogue names (format and file), to use in data.datasets",
        description="List every dataset of a catalogue (our YAML or a LLaMA-Factory dataset_info.json).",
    )
    listing.add_argument(
        "--catalog", default="examples/data/datasets.yaml", help="catalogue file (default examples/data/datasets.yaml)"
    )
    listing.add_argument("--dataset-dir", help="root of the catalogue's file names (default: its folder)")
    listing.set_defaults(func=cmd_data_list)


def _add_estimate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate",
        help="memory and time of a training config before it runs (per component, with formulas); --fit, --measure",
        description="Read the same YAML as `lmforge train` and print the per-device memory of every component "
        "(weights, reference model, optimizer states, gradients, activations of this dataset's real tokens per "
        "micro-batch, logits/loss buffers, rollout KV cache) with its formula, the peak, and FLOPs/time per step "
        "and per run. Formulas and measured accuracy: docs/estimate.md.",
    )
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, applied in order")
    p.add_argument("--gpus", type=int, default=1, help="number of GPUs (data parallel, ZeRO partitions); default 1")
    p.add_argument(
        "--gpu", help="device for time and default budget: h100, h800, h200, a100, a800, l40s, a10, 4090, v100"
    )
    p.add_argument("--gpu-mem", help="memory budget per device, e.g. 80GB or 24GiB (default: the --gpu's)")
    p.add_argument(
        "--measure", type=int, nargs="?", const=3, default=0, metavar="STEPS",
        help="also run STEPS (default 3) real training steps here: measured peak memory, step time, MFU",
    )  # fmt: skip
    p.add_argument(
        "--fit", choices=["batch", "cutoff_len", "zero"], help="largest batch / cutoff_len, or smallest ZeRO"
    )
    p.set_defaults(func=cmd_estimate)


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
    p.add_argument("--overwrite", action="store_true", help="replace a folder an earlier init-model wrote")
    p.set_defaults(func=cmd_init_model)


UNSAFE_PICKLE_HELP = "load .bin/.pt weights you trust (torch >= 2.6, weights_only=True); refused by default"


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="merge a LoRA adapter into its base model; write a verified safetensors folder or GGUF + Modelfile",
        description="Merge a PEFT adapter into the base model (fp32), check on fixed inputs that the merged logits "
        "equal the adapter model's (max abs diff <= 1e-4) and differ from the base's (> 1e-3), then write sharded "
        "safetensors, the tokenizer (with chat template), generation_config (stops on the template's end-of-turn "
        "ids) and lmforge_export.json. Files are staged next to --output and renamed into place at the end. "
        "--format gguf writes OUTPUT/NAME.TYPE.gguf (llama.cpp) and an Ollama Modelfile (TEMPLATE, stop tokens), "
        "verified by reloading the file: logits, greedy text and tokenizer round trip (docs/export.md).",
    )
    p.add_argument("--model", required=True, help="base model folder or hub id the adapter was trained on")
    p.add_argument("--adapter", help="adapter folder (a LoRA run's output_dir or checkpoint); gguf: optional")
    p.add_argument("--output", required=True, help="destination folder (must not exist unless --overwrite)")
    p.add_argument("--format", choices=["safetensors", "gguf"], default="safetensors", help="default safetensors")
    p.add_argument(
        "--gguf-type",
        choices=["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"],
        default="f16",
        help="gguf: tensor type (default f16; q4_0 keeps embeddings and output head in q8_0; k-quants need "
        "lmforge[llamacpp])",
    )
    p.add_argument("--template", default="auto", help="gguf: chat template for the file and Modelfile (default auto)")
    p.add_argument("--system", help="gguf: SYSTEM prompt for the Modelfile (use the one the training data had)")
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
    _add_trust_remote_code(p)
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
    _add_sampling_flags(p)
    p.add_argument("--allow-unsafe-pickle", action="store_true", help=UNSAFE_PICKLE_HELP)
    _add_trust_remote_code(p)
    p.set_defaults(func=cmd_chat)


def _add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """One flag per GenerationOptions field, with its defaults and help (the one sampling type's)."""
    from lmforge.inference.sampling import GenerationOptions

    for fld in dataclasses.fields(GenerationOptions):
        flags = [f"--{fld.name.replace('_', '-')}"] + (["--max-tokens"] if fld.name == "max_new_tokens" else [])
        kind = int if fld.name == "seed" else type(fld.default)
        p.add_argument(
            *flags,
            dest=fld.name,
            type=kind,
            default=fld.default,
            help=f"{fld.metadata['help']} (default {fld.default})",
        )


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
    p.add_argument(
        "--model-name",
        help="model id clients send and /v1/models lists (default: the --adapter folder name, else the --model one)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every route except /health")
    p.add_argument("--api-key-file", help="read the API key from the first line of this file instead")
    p.add_argument("--insecure-no-auth", action="store_true", help="allow a non-loopback --host without a key")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--allow-unsafe-pickle", action="store_true", help=UNSAFE_PICKLE_HELP)
    for name, kind, default, text in limit_fields():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"{text} (default {default})")
    _add_trust_remote_code(p)
    p.set_defaults(func=cmd_serve)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from lmforge.evaluation.eval_reference import eval_reference

    p = sub.add_parser(
        "eval",
        help="evaluate a model (+ adapter): perplexity, generation BLEU/ROUGE, multiple-choice benchmarks",
        description="Evaluate a model from a YAML config (configs/eval/*.yaml) and/or flags, with dotted key=value "
        "overrides. Writes OUTPUT_DIR/eval_results.json (and predictions.jsonl for generate) and prints a table.\n\n"
        "Examples:\n  lmforge eval configs/eval/mmlu.yaml model.name_or_path=runs/sft-merged\n"
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
    _add_trust_remote_code(p)
    p.set_defaults(func=cmd_eval)


def cmd_text2sql_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmforge.text2sql.examples import find_question_files
    from lmforge.text2sql.prepare import format_prepare_report, prepare
    from lmforge.text2sql.spider_tables import load_tables
    from lmforge.text2sql.sql_prompts import PromptSettings

    settings = PromptSettings(args.schema_format, args.sample_rows)
    if args.cutoff_len and not args.tokenizer:
        raise LmforgeError("--cutoff-len needs --tokenizer (a model or tokenizer folder) to count prompt tokens")
    builder_args: dict = {"db_dir": args.db_dir, "cutoff_len": args.cutoff_len}
    if args.tokenizer:
        from lmforge.models.adapters import load_plain_tokenizer
        from lmforge.templates import get_template

        tokenizer = load_plain_tokenizer(args.tokenizer)
        builder_args |= {"tokenizer": tokenizer, "template": get_template(args.template, tokenizer)}
    files = find_question_files(args.spider)
    dev = Path(args.dev) if args.dev else None
    report = prepare(files, load_tables(args.tables), args.output, settings, builder_args, dev, args.name)
    print(format_prepare_report(report, args.output))
    return 0


def cmd_text2sql_predict(args: argparse.Namespace) -> int:
    from lmforge.inference.engine import GenerationOptions, load_engine
    from lmforge.text2sql.examples import read_examples
    from lmforge.text2sql.predict import SelfConsistency, predict, write_predictions
    from lmforge.text2sql.prepare import PromptBuilder
    from lmforge.text2sql.spider_tables import load_tables
    from lmforge.text2sql.sql_prompts import load_prompt_settings

    if args.num_samples > 1 and (args.temperature <= 0 or not args.db_dir):
        raise LmforgeError("--num-samples > 1 (self-consistency) needs --temperature > 0 and --db-dir")
    settings, cutoff = load_prompt_settings(args.prompt_settings, args.schema_format, args.sample_rows)
    examples = read_examples(args.questions, need_query=False)
    schemas = load_tables(args.tables)
    options = GenerationOptions(args.max_new_tokens, args.temperature, args.top_p, args.top_k, seed=args.seed)
    engine = load_engine(args.model, args.adapter, args.template, args.dtype, args.allow_unsafe_pickle)
    cutoff = args.cutoff_len or cutoff
    builder = PromptBuilder(schemas, settings, args.db_dir, engine.tokenizer, engine.template, cutoff)
    consistency = SelfConsistency(args.num_samples, args.db_dir)
    records, report = predict(engine, examples, builder, options, args.batch_size, consistency)
    import dataclasses

    run = {
        k: getattr(args, k) for k in ("model", "adapter", "template", "questions", "tables", "db_dir", "num_samples")
    }
    run |= {"prompt": settings.to_dict(), "cutoff_len": cutoff, "generation": dataclasses.asdict(options)}
    jsonl, sql = write_predictions(args.output, records, {**run, "lmforge": __version__})
    note = f"; {report.truncated} schemas truncated to fit cutoff_len" if report.truncated else ""
    print(f"{len(records)} predictions -> {jsonl} and {sql}{note}")
    return 0


def cmd_text2sql_eval(args: argparse.Namespace) -> int:
    import json

    from lmforge.text2sql.evaluate import ExecSettings, check_pairing, evaluate, format_report
    from lmforge.text2sql.examples import read_gold, read_predictions
    from lmforge.text2sql.spider_tables import load_tables

    preds, gold = read_predictions(args.pred), read_gold(args.gold)
    check_pairing(preds, gold, args.pred, args.gold)
    settings = ExecSettings(args.timeout, args.max_rows, args.keep_distinct)
    report = evaluate(preds, gold, load_tables(args.tables), args.db_dir, settings, args.workers)
    print(format_report(report))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1, default=str)
        print(f"report: {args.output}")
    return 0


def cmd_text2sql_synth_db(args: argparse.Namespace) -> int:
    from lmforge.text2sql.examples import read_gold
    from lmforge.text2sql.spider_tables import load_tables, schema_for
    from lmforge.text2sql.synth_db import synthesize

    schemas, gold = load_tables(args.tables), read_gold(args.gold)
    for ex in gold:
        schema_for(schemas, ex.db_id, ex.where)
    report = synthesize(schemas, gold, args.output, args.count, args.rows, args.seed)
    print(
        f"{report.databases} databases -> {args.output}/DB_ID/*.sqlite; {report.gold_checked} gold queries checked: "
        f"{len(report.gold_failures)} fail, {report.empty_results} return no rows on every database"
    )
    for failure in report.gold_failures[:10]:
        print(f"  {failure}")
    return 0


def _add_text2sql(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "text2sql",
        help="text-to-SQL on Spider-format data: prepare SFT data, predict, evaluate (EX and EM)",
        description="Spider/BIRD-format text-to-SQL: `prepare` builds an SFT dataset + catalogue from question "
        "files and tables.json; train it with `lmforge train configs/text2sql/lora.yaml`; `predict` writes SQL "
        "for each question; `eval` scores predictions by execution (EX) and exact-set match (EM); `synth-db` builds "
        "test databases from tables.json. See "
        "docs/text2sql.md.",
    )
    t_sub = p.add_subparsers(dest="text2sql_command", required=True, metavar="{prepare,predict,eval,synth-db}")
    prep = t_sub.add_parser("prepare", help="question files + tables.json -> SFT dataset (openai JSONL) + catalogue")
    prep.add_argument("--spider", required=True, nargs="+", metavar="DIR|FILE", help="Spider folder or question files")
    prep.add_argument("--tables", required=True, help="tables.json (Spider schema format)")
    prep.add_argument("--db-dir", help="folder of DB_ID/*.sqlite (needed for --sample-rows)")
    prep.add_argument("--output", required=True, help="folder for the dataset, datasets.yaml and the report")
    prep.add_argument("--dev", help="a dev question file: written too, and checked for leakage")
    prep.add_argument("--name", default="text2sql", help="dataset name prefix (default text2sql)")
    prep.add_argument("--schema-format", choices=["nl", "ddl"], default="nl", help="schema text (default nl)")
    prep.add_argument("--sample-rows", type=int, default=0, help="sample rows per table from the database")
    prep.add_argument("--tokenizer", help="model/tokenizer folder to count tokens with (for --cutoff-len)")
    prep.add_argument("--template", default="auto", help="chat template to count with (use training's)")
    prep.add_argument("--cutoff-len", type=int, help="fit each example into this many tokens by leaving out tables")
    prep.set_defaults(func=cmd_text2sql_prepare)

    pred = t_sub.add_parser("predict", help="generate SQL for each question (greedy, batched)")
    pred.add_argument("--model", required=True, help="model folder or hub id")
    pred.add_argument("--adapter", help="PEFT adapter folder (a text2sql training run)")
    pred.add_argument("--template", default="auto", help="chat template (the one training used)")
    pred.add_argument("--questions", required=True, help="question file (Spider dev.json style)")
    pred.add_argument("--tables", required=True, help="tables.json")
    pred.add_argument("--db-dir", help="folder of DB_ID/*.sqlite (sample rows, self-consistency)")
    pred.add_argument("--prompt-settings", help="text2sql_prompt.json written by prepare (same prompts as training)")
    pred.add_argument("--schema-format", choices=["nl", "ddl"], help="without --prompt-settings (default nl)")
    pred.add_argument("--sample-rows", type=int, help="without --prompt-settings (default 0)")
    pred.add_argument("--cutoff-len", type=int, help="fit prompts into this many tokens (default: prepare's)")
    pred.add_argument("--output", required=True, help="folder for predictions.jsonl and predictions.sql")
    pred.add_argument("--batch-size", type=int, default=8, help="questions per generation batch (default 8)")
    pred.add_argument("--max-new-tokens", type=int, default=256, help="answer length limit (default 256)")
    pred.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    pred.add_argument("--top-p", type=float, default=0.9, help="nucleus mass when sampling (default 0.9)")
    pred.add_argument("--top-k", type=int, default=50, help="top-k when sampling (default 50)")
    pred.add_argument("--num-samples", type=int, default=1, help="> 1: self-consistency, majority by result")
    pred.add_argument("--seed", type=int, help="sampling seed")
    pred.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    pred.add_argument("--allow-unsafe-pickle", action="store_true", help=UNSAFE_PICKLE_HELP)
    pred.set_defaults(func=cmd_text2sql_predict)

    ev = t_sub.add_parser("eval", help="score predictions: execution accuracy (EX) and exact-set match (EM)")
    ev.add_argument("--pred", required=True, help="predictions.jsonl, or one SQL per line")
    ev.add_argument("--gold", required=True, help="gold: 'SQL<TAB>db_id' lines, or a question file with query")
    ev.add_argument("--tables", required=True, help="tables.json")
    ev.add_argument("--db-dir", help="folder of DB_ID/*.sqlite; every file of a db_id is used (test-suite style)")
    ev.add_argument("--timeout", type=float, default=10.0, help="seconds per query (default 10)")
    ev.add_argument("--max-rows", type=int, default=100_000, help="row cap per query (default 100000)")
    ev.add_argument("--keep-distinct", action="store_true", help="do not remove DISTINCT before executing")
    ev.add_argument("--workers", type=int, help="processes executing queries (default: CPUs, at most 8)")
    ev.add_argument("--output", help="write the full report (per example too) as JSON here")
    ev.set_defaults(func=cmd_text2sql_eval)

    syn = t_sub.add_parser("synth-db", help="build test SQLite databases from tables.json (EX without the originals)")
    syn.add_argument("--tables", required=True, help="tables.json")
    syn.add_argument(
        "--gold",
        required=True,
        help="gold queries ('SQL<TAB>db_id' or a question file): which db_ids, and the literals to plant",
    )
    syn.add_argument(
        "--output", required=True, help="folder to write DB_ID/DB_ID_synthK.sqlite into (use as --db-dir)"
    )
    syn.add_argument("--count", type=int, default=3, help="databases per db_id (default 3)")
    syn.add_argument("--rows", type=int, default=15, help="about this many rows per table in the first (default 15)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    syn.set_defaults(func=cmd_text2sql_synth_db)


def cmd_generate(args: argparse.Namespace) -> int:
    from lmforge.generate.generate_config import load_generate_config

    budgets = {"max_requests": args.max_requests, "max_tokens": args.max_tokens}
    overrides = [*args.overrides, *(f"{k}={v}" for k, v in budgets.items() if v is not None)]
    cfg = load_generate_config(args.method, args.config, overrides)  # config errors before any model loads
    from lmforge.generate.generate_command import format_report, generate_command

    report = generate_command(args.method, cfg, resume=args.resume, dry_run=args.dry_run)
    if not args.dry_run:
        print(format_report(report))
    return 0


def _add_generate(sub: argparse._SubParsersAction) -> None:
    from lmforge.generate.generate_config import METHODS, generate_reference

    p = sub.add_parser(
        "generate",
        help="write training data with a model: self-instruct, self-qa (from documents), self-kg (from triples)",
        description="Generate an SFT dataset with a generator model (an OpenAI-compatible endpoint or a local model "
        "in-process) and register it in OUTPUT/datasets.yaml. See docs/generate.md.",
    )
    g_sub = p.add_subparsers(dest="method", required=True, metavar="{" + ",".join(METHODS) + "}")
    about = {
        "self-instruct": "grow seed tasks into new instructions with instances (Wang et al. 2023)",
        "self-qa": "questions that stand alone and grounded answers from documents (Self-QA)",
        "self-kg": "questions and answers from knowledge-graph triples, checked against them",
    }
    for method in METHODS:
        m = g_sub.add_parser(
            method,
            help=about[method],
            description=f"{about[method]}.\n\nExample:\n  lmforge generate {method} "
            f"configs/generate/{method.replace('-', '_')}.yaml output.dir=runs/gen\n\n" + generate_reference(method),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        m.add_argument("config", help=CONFIG_HELP)
        m.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, applied in order")
        m.add_argument("--resume", action="store_true", help="continue the run in output.dir (replays its replies)")
        m.add_argument("--dry-run", action="store_true", help="print the first wave of prompts; send nothing")
        m.add_argument("--max-requests", type=int, help="send at most this many requests (max_requests)")
        m.add_argument("--max-tokens", type=int, help="stop once this many tokens were used (max_tokens)")
        m.set_defaults(func=cmd_generate)


def cmd_convert_config(args: argparse.Namespace) -> int:
    from lmforge.config.convert import convert_file

    text = convert_file(args.config, args.output)
    if args.output:
        print(f"wrote {args.output}; check it with: lmforge data preview {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from lmforge.utils.environment import environment_report

    print(environment_report())
    return 0


def _add_env(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="print versions and devices (paste them into bug reports)")
    p.set_defaults(func=cmd_env)


def _add_convert_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-config",
        help="convert a flat LLaMA-Factory training YAML into an lmforge config",
        description="Rewrite a flat LLaMA-Factory YAML (model_name_or_path, finetuning_type, dataset, ...) into "
        "lmforge's sections; TrainingArguments keys go to train:, and keys with no lmforge meaning are listed in "
        "the header instead of being dropped silently.",
    )
    p.add_argument("config", help="the LLaMA-Factory YAML file")
    p.add_argument("--output", help="write the converted config here (default: print it)")
    p.set_defaults(func=cmd_convert_config)


def cmd_ui(args: argparse.Namespace) -> int:
    from lmforge.ui.ui_command import run_ui

    run_ui(args.host, args.port, args.jobs_dir, args.auth, args.auth_file, args.abort_grace)
    return 0


def _add_ui(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="local web app: data preview, train, evaluate, chat, export, runs side by side (docs/ui.md)",
        description="A web UI over the same commands: forms are generated from the config schema, Start runs "
        "`lmforge train|eval|export` as a separate process that outlives the page and the UI. Binds 127.0.0.1 by "
        "default; a non-loopback --host needs --auth USER:PASSWORD (HTTP Basic). See docs/ui.md.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--jobs-dir", default="lmforge-ui", help="folder of the UI's job records (default ./lmforge-ui)")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="require HTTP Basic authentication with these credentials")
    p.add_argument("--auth-file", help="read USER:PASSWORD from the first line of this file instead")
    p.add_argument(
        "--abort-grace", type=float, default=60.0, help="seconds from Abort's SIGTERM to SIGKILL (default 60)"
    )
    p.set_defaults(func=cmd_ui)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_train,
    _add_data,
    _add_templates,
    _add_estimate,
    _add_init_model,
    _add_tokenizer,
    _add_export,
    _add_chat,
    _add_eval,
    _add_serve,
    _add_text2sql,
    _add_generate,
    _add_convert_config,
    _add_env,
    _add_ui,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmforge",
        description="Adapt large language models to a domain: continued pretraining (pt), supervised fine-tuning "
        "(sft), reward modelling and preference/RL training (rm, dpo, kto, orpo, simpo, ppo, grpo) with full, "
        "freeze, LoRA/QLoRA or another PEFT method; then export, chat, serve and evaluate. "
        "Run `lmforge COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"lmforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, except that `key=value` overrides may also follow the flags (`train cfg --resume a.b=1`);
    anything else unrecognised is reported with the usage of the subcommand it was given to."""
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *(e for e in extra if "=" in e and not e.startswith("-"))]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser that parsed the chosen (sub)command, e.g. `data preview`'s."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return _innermost(action.choices[getattr(args, action.dest)], args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    try:
        return args.func(args)
    except LmforgeError as exc:
        print(f"lmforge: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except Exception as exc:  # the machine's failures (disk full, ...) are messages; anything else re-raises
        message = environment_error(exc)
        if message is None:
            raise
        print(f"lmforge: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
