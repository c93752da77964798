"""Request bodies of the OpenAI-compatible API: size-limited reading, strict parsing, OpenAI-style errors.

Bodies are read and parsed by hand (not by FastAPI's body parameters) so that every bad input — too large, not
UTF-8, not JSON, nested too deeply, wrong fields — gets an `{"error": {message, type, param, code}}` body with a
400/413 status, never a 500 (QUALITY D8). Requests may not bring their own chat template (D5): prompts are built
only by the model's training template.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ApiError(Exception):
    """An error answered to the client as an OpenAI-style JSON body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def as_message(self) -> dict[str, Any]:
        """The template's message dict (text parts joined, as OpenAI treats a list of text parts)."""
        content = self.content if isinstance(self.content, str | None) else "".join(p.text for p in self.content)
        return {"role": self.role, "content": content or ""}


class StreamOptions(_Strict):
    include_usage: bool = False


class SamplingRequest(_Strict):
    """Fields shared by chat and text completions."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)  # extension (vLLM's name); 0 = off
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: bool | int | None = None

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value: float) -> float:
        if value != 0:
            raise ValueError("only 0 is supported")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | int | None) -> bool | int | None:
        if value:
            raise ValueError("logprobs are not supported by this server")
        return value

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # newer OpenAI name for max_tokens


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt


def reject_request_templates(payload: dict[str, Any]) -> None:
    """D5: a client-supplied Jinja template would run on the server; refuse it wherever it is put."""
    kwargs = payload.get("chat_template_kwargs")
    if "chat_template" in payload or (isinstance(kwargs, dict) and "chat_template" in kwargs):
        raise ApiError(
            400,
            "request-supplied chat templates are not allowed; prompts use the model's training template",
            param="chat_template",
            code="chat_template_not_allowed",
        )
    if kwargs is not None:
        raise ApiError(400, "chat_template_kwargs are not supported", param="chat_template_kwargs")


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Bytes to a validated request, or an ApiError naming the problem (400)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding") from exc
    try:
        payload = json.loads(text)
    except RecursionError as exc:
        raise ApiError(400, "request JSON is nested too deeply", code="invalid_json") from exc
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    reject_request_templates(payload)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        extra = f" ({exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ApiError(400, f"{param}: {first['msg']}{extra}", param=param, code="invalid_value") from exc
    except RecursionError as exc:
        raise ApiError(400, "request JSON is nested too deeply", code="invalid_json") from exc
