"""Request bodies of the OpenAI-compatible API: size-limited reading, strict parsing, OpenAI-style errors.

Bodies are read and parsed by hand (not by FastAPI's body parameters) so that every bad input — too large, not
UTF-8, not JSON, nested too deeply, wrong fields — gets an `{"error": {message, type, param, code}}` body with a
400/413 status, never a 500 (QUALITY D8). Requests may not bring their own chat template (D5): prompts are built
only by the model's training template.
"""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from lmforge.inference.sampling import GenerationOptions


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


MAX_TOP_LOGPROBS = 20  # OpenAI's limit for `logprobs` (completions) and `top_logprobs` (chat)
PROMPT_SHAPES = "a string, a list of strings, a list of token ids or a list of token-id lists"


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class FunctionCall(_Strict):
    name: str = Field(min_length=1)
    arguments: str  # a JSON object, as a string (OpenAI's wire format)

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, value: str) -> str:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object as a string: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object as a string")
        return value


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]  # developer: OpenAI's newer name for system
    content: str | list[TextPart] | None = None
    name: str | None = None  # a participant name: accepted, not rendered (chat templates have no place for it)
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def as_message(self) -> dict[str, Any]:
        """The template's message dict (text parts joined, as OpenAI treats a list of text parts; developer is
        system; tool-call arguments as objects, which is what chat templates render with `tojson`)."""
        content = self.content if isinstance(self.content, str | None) else "".join(p.text for p in self.content)
        message: dict[str, Any] = {
            "role": "system" if self.role == "developer" else self.role,
            "content": content or "",
        }
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": json.loads(call.function.arguments)},
                }
                for call in self.tool_calls
            ]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


class FunctionDefinition(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # accepted; the call's arguments are not constrained (no constrained decoding)


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class ResponseFormat(BaseModel):
    """Only `text` (the default) is served; JSON modes would need constrained decoding, which this server has not."""

    model_config = ConfigDict(extra="allow")  # json_schema carries its own fields
    type: Literal["text", "json_object", "json_schema"]

    @field_validator("type")
    @classmethod
    def _text_only(cls, value: str) -> str:
        if value != "text":
            raise ValueError(
                f"'{value}' is not supported: this server has no constrained decoding, so it cannot guarantee JSON "
                "output; use 'text' (or omit response_format) and ask for JSON in the prompt"
            )
        return value


class StreamOptions(_Strict):
    include_usage: bool = False


_DEFAULTS = GenerationOptions()


class SamplingRequest(_Strict):
    """Fields shared by chat and text completions; the sampling ones map onto `GenerationOptions` (`options`) and
    take its defaults (greedy when `temperature` is not sent)."""

    model: str
    max_tokens: int | None = Field(default=None, ge=0)  # 0: score the prompt only (completions with echo)
    temperature: float = Field(default=_DEFAULTS.temperature, ge=0.0, le=2.0)
    top_p: float = Field(default=_DEFAULTS.top_p, gt=0.0, le=1.0)
    top_k: int = Field(default=_DEFAULTS.top_k, ge=0)  # extension (vLLM's name); 0 = off
    repetition_penalty: float = Field(default=_DEFAULTS.repetition_penalty, gt=0.0, le=10.0)  # extension (vLLM's)
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # accepted and ignored (OpenAI uses it for abuse monitoring)
    store: bool | None = None  # accepted and ignored: this server stores nothing
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value: float) -> float:
        if value != 0:
            raise ValueError("only 0 is supported")
        return value

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def options(self, max_tokens: int, choice: int = 0) -> GenerationOptions:
        """The sampling settings of choice number `choice` (its seed is `seed + choice`)."""
        seed = None if self.seed is None else self.seed + choice
        return GenerationOptions(max_tokens, self.temperature, self.top_p, self.top_k, self.repetition_penalty, seed)


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # newer OpenAI name for max_tokens
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None  # false: at most one tool call per reply

    @model_validator(mode="after")
    def _check(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise _field_error("top_logprobs", "top_logprobs needs logprobs: true")
        if self.max_tokens == 0:
            message = "max_tokens must be >= 1 (scoring a prompt is /v1/completions with echo and max_tokens 0)"
            raise _field_error("max_tokens", message)
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools:
            raise _field_error("tool_choice", "tool_choice needs tools")
        return self

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False  # the prompt is returned before the completion (with its log-probabilities under logprobs)
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)  # top alternatives per token
    best_of: int | None = Field(default=None, ge=1)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value: Any) -> Any:
        """One clear message for every malformed prompt (the union's own errors name a type, not the problem)."""
        if isinstance(value, str):
            if not value:
                raise ValueError("must not be empty (a prompt needs at least one token)")
            return value
        if not isinstance(value, list) or not value:
            raise ValueError(f"must be {PROMPT_SHAPES}" + (" and not empty" if value == [] else ""))
        if all(isinstance(v, str) for v in value):
            for i, text in enumerate(value):
                if not text:
                    raise ValueError(f"prompt[{i}] is empty (a prompt needs at least one token)")
            return value
        if all(_is_token_id(v) for v in value):
            return value
        if all(isinstance(v, list) for v in value):
            for i, ids in enumerate(value):
                if not ids:
                    raise ValueError(f"prompt[{i}] is an empty token list (a prompt needs at least one token)")
                if not all(_is_token_id(v) for v in ids):
                    raise ValueError(f"prompt[{i}] must hold token ids (integers >= 0)")
            return value
        raise ValueError(f"must be {PROMPT_SHAPES}, not a mix")

    @model_validator(mode="after")
    def _check(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise _field_error("max_tokens", "max_tokens 0 scores the prompt only, which needs echo: true")
        if self.best_of not in (None, 1, self.n):
            message = f"best_of must be 1 or equal to n ({self.n}); ranking extra candidates is not supported"
            raise _field_error("best_of", message)
        return self

    def prompts(self) -> list[str | list[int]]:
        """The batch of prompts: strings, or token-id lists."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if _is_token_id(self.prompt[0]):
            return [cast(list[int], self.prompt)]
        return cast("list[str | list[int]]", self.prompt)


def _field_error(param: str, message: str) -> PydanticCustomError:
    """A check across fields that still names its field: `parse_body` reads `param` from the error's context."""
    return PydanticCustomError("invalid_value", message, {"param": param})


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
        param = (first.get("ctx") or {}).get("param") or ".".join(str(p) for p in first["loc"]) or None
        extra = f" ({exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ApiError(400, f"{param}: {first['msg']}{extra}", param=param, code="invalid_value") from exc
    except RecursionError as exc:
        raise ApiError(400, "request JSON is nested too deeply", code="invalid_json") from exc
