"""Answer a few prompts with a base model + LoRA adapter, loaded with plain transformers and peft.

It shows that lmforge's outputs are ordinary Hugging Face folders, and builds prompts with the same template
code as training, so the model sees at inference exactly what it was trained on.

    python examples/chat_answers.py --model runs/quickstart/pt --adapter runs/quickstart/sft "Who are you?"
"""

from __future__ import annotations

import argparse

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmforge.templates import get_template


def answer(model, tokenizer, template, prompt: str, max_new_tokens: int) -> str:
    ids = template.encode_prompt(tokenizer, [{"role": "user", "content": prompt}])
    inputs = torch.tensor([ids])
    out = model.generate(
        inputs,
        attention_mask=torch.ones_like(inputs),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=template.stop_token_ids(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompts", nargs="+", help="user messages to answer")
    parser.add_argument("--model", required=True, help="base model folder")
    parser.add_argument("--adapter", help="LoRA adapter folder (lmforge sft output_dir)")
    parser.add_argument("--template", default="chatml", help="chat template name (default chatml)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.adapter or args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    if args.adapter:
        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()
    template = get_template(args.template, tokenizer)
    for prompt in args.prompts:
        print(f"\nuser> {prompt}\nassistant> {answer(model, tokenizer, template, prompt, args.max_new_tokens)}")


if __name__ == "__main__":
    main()
