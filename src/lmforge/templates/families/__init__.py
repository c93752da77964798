"""Every named chat format, as a `TemplateSpec` (our Jinja + what the Jinja cannot say); one module per family."""

from __future__ import annotations

from lmforge.templates.families import chatml, deepseek, gemma, generic, glm4, llama2, llama3, mistral, phi, qwen
from lmforge.templates.spec import TemplateSpec

SPECS: tuple[TemplateSpec, ...] = (
    *generic.SPECS,
    *chatml.SPECS,
    *qwen.SPECS,
    *llama2.SPECS,
    *llama3.SPECS,
    *mistral.SPECS,
    *gemma.SPECS,
    *glm4.SPECS,
    *phi.SPECS,
    *deepseek.SPECS,
)
