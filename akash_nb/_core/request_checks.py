"""Preflight: a chat request that cannot work is refused before it is sent, with one sentence naming the fix
(the parameter checkers it shares with every public function are in `akash_nb._core.parameters`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
import openai

from .exceptions import REQUEST, ParameterError, RequestError, table_error
from .parameters import check_parameters, int_param


class RefusedRequest(RequestError, openai.OpenAIError):
    """A request refused before sending (`refuse_bad_request`): an OpenAIError, so the SDK passes it on at
    once instead of retrying it as a connection failure."""


ROLES = ("system", "user", "assistant", "tool")
CHARS_PER_TOKEN = 4
SHAPE = '[{"role": "user", "content": "Hello"}]'


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


def _refused(kind: str, **fields: object) -> RequestError:
    return table_error(REQUEST, kind, RequestError, **fields)


def _check_content(number: int, message: Mapping[str, Any]) -> None:
    role, content = message["role"], message["content"]
    if content is None:
        if role == "assistant" and message.get("tool_calls"):
            return
        raise _refused("content-none", number=number, role=role)
    if isinstance(content, str):
        return
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        for part in content:
            if not isinstance(part, Mapping) or "type" not in part:
                raise _refused("content-part-not-dict", number=number, role=role, part=repr(part))
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise _refused("text-part-no-text", number=number, role=role)
            elif role != "user":  # images and audio go in user messages only
                raise _refused("part-not-text", number=number, role=role, part_type=repr(part["type"]))
        return
    raise _refused("content-type", number=number, role=role, type=type(content).__name__)


def check_messages(messages: Any) -> None:
    """`messages` is a non-empty list of {"role", "content"} dicts with known roles and text content."""
    if isinstance(messages, str | bytes | bytearray) or not isinstance(messages, Sequence):
        raise _refused("messages-not-list", shape=SHAPE, type=type(messages).__name__)
    if not messages:
        raise _refused("messages-empty", shape=SHAPE)
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise _refused("message-not-dict", number=number, message=repr(message))
        if message["role"] not in ROLES:
            raise _refused("unknown-role", number=number, role=repr(message["role"]), roles=", ".join(ROLES))
        _check_content(number, message)
        only_text = isinstance(message["content"], str) or all(
            part["type"] == "text" for part in message["content"] or ()
        )
        if message["role"] == "user" and only_text and not _text_of(message["content"]).strip():
            raise _refused("empty-prompt", number=number)


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
        raise _refused("not-a-model", model=repr(model))
    # The same sentence as any other temperature= or max_tokens= (one case, one sentence: the INPUT rows).
    check_parameters({"temperature": temperature, "max_tokens": max_tokens})
    if max_tokens is not None and context_tokens is not None and max_tokens > context_tokens:
        raise _refused("max-tokens-over-context", max_tokens=max_tokens, context=context_tokens)
    if context_tokens is None:
        return
    prompt = estimate_tokens("".join(_text_of(m["content"]) for m in messages))
    if prompt > context_tokens:
        over = prompt - context_tokens
        raise _refused(
            "prompt-over-context",
            prompt=prompt,
            context=context_tokens,
            over=over,
            chars=over * CHARS_PER_TOKEN,
        )
    if max_tokens is not None and prompt + max_tokens > context_tokens:
        over = prompt + max_tokens - context_tokens
        raise _refused(
            "prompt-plus-max-tokens",
            prompt=prompt,
            max_tokens=max_tokens,
            context=context_tokens,
            over=over,
            fits=context_tokens - prompt,
        )
