"""Chat templates: conversations -> token ids and labels, exactly as the model's chat template renders them.

Public API (documented in the README):
    template = get_template(name, tokenizer)                  # a named template, or "auto"
    encoded = template.encode(tokenizer, messages, tools)      # .input_ids, .labels as training uses them
    prompt_ids = template.encode_prompt(tokenizer, messages, tools)
    template.stop_token_ids(tokenizer)
"""

from lmforge.templates.base import ChatTemplate, Encoded, Message
from lmforge.templates.spec import TemplateSpec
from lmforge.templates.template_table import (
    TEMPLATES,
    check_template_matches_tokenizer,
    get_template,
    template_names,
    template_table,
)
from lmforge.templates.token_labels import has_control_text

__all__ = [
    "TEMPLATES",
    "ChatTemplate",
    "Encoded",
    "Message",
    "TemplateSpec",
    "check_template_matches_tokenizer",
    "get_template",
    "has_control_text",
    "template_names",
    "template_table",
]
