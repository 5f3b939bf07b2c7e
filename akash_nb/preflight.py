"""Preflight: a request, or a parameter of a public function, that cannot work is refused before it is sent,
with one sentence naming the fix."""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx2
import openai

from .exceptions import ParameterError, RequestError, input_error


class RefusedRequest(RequestError, openai.OpenAIError):
    """A request refused before sending (`refuse_bad_request`): an OpenAIError, so the SDK passes it on at
    once instead of retrying it as a connection failure."""


ROLES = ("system", "user", "assistant", "tool")
CHARS_PER_TOKEN = 4
TEMPERATURE_RANGE = (0.0, 2.0)
SHAPE = '[{"role": "user", "content": "Hello"}]'


# --- parameters of public functions and widgets ---------------------------------------------------------
# Each check returns the value to use or raises a ParameterError whose one sentence names the parameter
# and the fix (the rows of akash_nb.errors.INPUT).

HUGE_TEXT = 10_000_000  # characters: far past any model's context; refused rather than sent


def _kind(value: Any) -> str:
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name} ({_short(value)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def wrong_type(
    name: str, value: Any, *, expected: str, example: str, got: str | None = None
) -> ParameterError:
    """The error for `name=value` when `value` is not what `name` takes: "name= must be EXPECTED, not GOT;
    for example EXAMPLE.", GOT being the value's type and repr unless given."""
    return input_error("wrong-type", name=name, expected=expected, got=got or _kind(value), example=example)


def choice_param(name: str, value: Any, choices: Iterable[str], *, example: str) -> str:
    """`value` if it is one of `choices`."""
    allowed = list(choices)
    if not isinstance(value, str) or value not in allowed:
        raise input_error(
            "out-of-range", name=name, got=_short(value), allowed=", ".join(allowed), example=example
        )
    return value


def bad_character(text: str, *, allow_newlines: bool = False) -> str | None:
    """The first control or invisible character in `text` (as U+XXXX and its name), or None."""
    for char in text:
        if allow_newlines and char in "\n\r\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            name = unicodedata.name(char, "a control character").lower()
            return f"U+{ord(char):04X}, {name}"
    return None


def text_param(
    name: str,
    value: Any,
    *,
    example: str,
    optional: bool = True,
    identifier: bool = False,
    allow_empty: bool = False,
) -> str | None:
    """`value` if it is usable text for parameter `name`; None if optional and None.

    `identifier`: a model id, provider name or URL, where a control or invisible character (a pasted
    zero-width space) can only be a mistake; free text (a prompt) may hold any character."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise wrong_type(name, value, expected="text (a str)", example=example)
    if not allow_empty and not value.strip():
        raise input_error("empty", name=name, example=example)
    if len(value) > HUGE_TEXT:
        raise input_error(
            "out-of-range",
            name=name,
            got=f"'...' ({len(value)} characters)",
            allowed=f"the {HUGE_TEXT:,} characters any model could read",
            example=example,
        )
    char = bad_character(value, allow_newlines=not identifier)
    if char is not None:
        raise input_error("control-characters", name=name, char=char, example=example)
    return value


def number_param(
    name: str, value: Any, *, low: float, high: float, example: str, optional: bool = True
) -> float | None:
    """`value` if it is a real number within [low, high] (an int or float, not a bool, not NaN)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong_type(name, value, expected="a number", example=example)
    if not (low <= value <= high):  # NaN fails this too
        raise input_error(
            "out-of-range", name=name, got=_short(value), allowed=f"{low:g}–{high:g}", example=example
        )
    return value


def int_param(
    name: str, value: Any, *, low: int, high: int, example: str, optional: bool = True
) -> int | None:
    """`value` if it is a whole number (an int, not a bool) within [low, high]."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(name, value, expected="a whole number", example=example)
    if not low <= value <= high:
        raise input_error(
            "out-of-range", name=name, got=_short(value), allowed=f"{low}–{high}", example=example
        )
    return value


def bool_param(name: str, value: Any, *, example: str) -> bool:
    if not isinstance(value, bool):
        raise wrong_type(name, value, expected="True or False", example=example)
    return value


def check_parameters(body: Any) -> None:
    """The sampling parameters of a chat request body have the types and ranges the API takes.

    Only what every OpenAI-compatible server agrees on is checked (temperature, top_p, max_tokens,
    max_completion_tokens, n, stream): a server failing on one of these says "internal error", not which."""
    if not isinstance(body, Mapping):
        return
    if "temperature" in body and body["temperature"] is not None:
        low, high = TEMPERATURE_RANGE
        number_param("temperature", body["temperature"], low=low, high=high, example="temperature=0.7")
    if "top_p" in body and body["top_p"] is not None:
        number_param("top_p", body["top_p"], low=0, high=1, example="top_p=0.9")
    for name in ("max_tokens", "max_completion_tokens"):
        if name in body and body[name] is not None:
            int_param(name, body[name], low=1, high=10**9, example=f"{name}=100")
    if "n" in body and body["n"] is not None:
        int_param("n", body["n"], low=1, high=128, example="n=1")
    if "stream" in body and body["stream"] is not None:
        bool_param("stream", body["stream"], example="stream=True")


def check_json(params: Mapping[str, Any]) -> None:
    """Each of `params` can be sent as JSON (text, numbers, lists, dicts; no NaN, no objects)."""
    for name, value in params.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise wrong_type(
                name, value, expected="a JSON value (text, a number, a list or a dict)", example=f"{name}=0.9"
            ) from None


def refuse_bad_request(request: httpx2.Request) -> None:
    """An httpx2 request hook (`akash_nb.client()` installs it): a chat request whose parameters cannot
    work (`check_parameters`) is refused before it is sent, in one sentence, and never retried."""
    if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
        return
    try:
        body = json.loads(request.content or b"{}")
    except (ValueError, RuntimeError, UnicodeDecodeError):  # not ours to judge: the server will say
        return
    try:
        check_parameters(body)
    except ParameterError as problem:
        raise RefusedRequest(problem.sentence) from None


def estimate_tokens(text: str) -> int:
    """About how many tokens `text` is (characters / 4, rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _text_of(content: Any) -> str:
    """The text in a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def _check_content(number: int, message: Mapping[str, Any]) -> None:
    role, content = message["role"], message["content"]
    if content is None:
        if role == "assistant" and message.get("tool_calls"):
            return
        raise RequestError(
            f"Message {number} ({role}) has content None; give it text, like "
            f'{{"role": "{role}", "content": "..."}}.'
        )
    if isinstance(content, str):
        return
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        for part in content:
            if not isinstance(part, Mapping) or "type" not in part:
                raise RequestError(
                    f"Message {number} ({role}) has a content part {part!r} that is not "
                    'a {"type": "text", "text": "..."} dict; write the content as a string.'
                )
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise RequestError(
                        f"Message {number} ({role}) has a text part without a string "
                        '"text"; write it as {"type": "text", "text": "..."}.'
                    )
            elif role != "user":  # images and audio go in user messages only
                raise RequestError(
                    f"Message {number} ({role}) has a {part['type']!r} part, but {role} "
                    "messages take text only; move it to a user message or describe it in "
                    "words."
                )
        return
    raise RequestError(
        f"Message {number} ({role}) has content of type {type(content).__name__}, but the API "
        f"needs text; pass a string, e.g. str(value) or an f-string."
    )


def check_messages(messages: Any) -> None:
    """`messages` is a non-empty list of {"role", "content"} dicts with known roles and text content."""
    if isinstance(messages, str | bytes | bytearray) or not isinstance(messages, Sequence):
        raise RequestError(
            f"messages must be a list of {{role, content}} dicts, like {SHAPE}; got a "
            f"{type(messages).__name__}."
        )
    if not messages:
        raise RequestError(f"messages is empty; add at least one user message, like {SHAPE}.")
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise RequestError(
                f"Message {number} is {message!r}, not a {{role, content}} dict; write it "
                f'like {{"role": "user", "content": "Hello"}}.'
            )
        if message["role"] not in ROLES:
            raise RequestError(
                f"Message {number} has role {message['role']!r}, which the API does not "
                f"know; use one of: {', '.join(ROLES)}."
            )
        _check_content(number, message)
        only_text = isinstance(message["content"], str) or all(
            part["type"] == "text" for part in message["content"] or ()
        )
        if message["role"] == "user" and only_text and not _text_of(message["content"]).strip():
            raise RequestError(
                f"The prompt is empty: message {number} (user) has no text; write what "
                "you want the model to do."
            )


def check_request(
    messages: Any,
    *,
    model: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    context_tokens: int | None = None,
) -> None:
    """Raise RequestError (one sentence naming the fix) if this request cannot work; return None if it can.

    Checked in this order: messages (shape, roles, text, an empty prompt), model, temperature, max_tokens,
    and, when `context_tokens` is known, whether prompt + max_tokens fit the model's context."""
    int_param("context_tokens", context_tokens, low=1, high=10**9, example="context_tokens=8192")
    check_messages(messages)
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise RequestError(f"model={model!r} is not a model id; pick one from client.models.list().")
    low, high = TEMPERATURE_RANGE
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            number_param("temperature", temperature, low=low, high=high, example="temperature=0.7")
        if not low <= temperature <= high:
            raise RequestError(
                f"temperature={temperature!r} is outside {low:g}–{high:g}; use 0 for "
                "repeatable answers, up to about 1 for varied ones."
            )
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            int_param("max_tokens", max_tokens, low=1, high=10**9, example="max_tokens=100")
        if max_tokens <= 0:
            raise RequestError(
                f"max_tokens={max_tokens!r} must be a whole number above 0, e.g. max_tokens=100."
            )
        if context_tokens is not None and max_tokens > context_tokens:
            raise RequestError(
                f"max_tokens={max_tokens} is larger than the model's context of "
                f"{context_tokens} tokens; use at most {context_tokens} (less, to leave room "
                "for the prompt)."
            )
    if context_tokens is None:
        return
    prompt = estimate_tokens("".join(_text_of(m["content"]) for m in messages))
    if prompt > context_tokens:
        over = prompt - context_tokens
        raise RequestError(
            f"The prompt is about {prompt} tokens (characters / 4) but the context holds "
            f"{context_tokens}; shorten it by about {over} tokens (~{over * CHARS_PER_TOKEN} "
            "characters), e.g. drop early messages."
        )
    if max_tokens is not None and prompt + max_tokens > context_tokens:
        over = prompt + max_tokens - context_tokens
        raise RequestError(
            f"The prompt (about {prompt} tokens) plus max_tokens={max_tokens} exceed the "
            f"context of {context_tokens} by about {over} tokens; lower max_tokens to "
            f"{context_tokens - prompt} or shorten the prompt."
        )
