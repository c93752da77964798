"""Chat templates: conversations -> token ids split at assistant turns (see `base.ChatTemplate`)."""

from lmforge.templates.base import ChatTemplate, EncodedTurn, Message
from lmforge.templates.encoding import has_control_text
from lmforge.templates.registry import TEMPLATES, check_template_matches_tokenizer, get_template, template_names

__all__ = [
    "TEMPLATES",
    "ChatTemplate",
    "EncodedTurn",
    "Message",
    "check_template_matches_tokenizer",
    "get_template",
    "has_control_text",
    "template_names",
]
