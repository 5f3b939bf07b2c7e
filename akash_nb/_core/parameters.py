"""The parameter checkers: a parameter of a public function or widget that cannot work is refused with one
sentence (a row of `exceptions.INPUT`) naming the parameter and the fix. Every layer may import this module:
it loads neither the OpenAI SDK nor httpx2."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import ParameterError, input_error

TEMPERATURE_RANGE = (0.0, 2.0)

# Each check returns the value to use or raises a ParameterError whose one sentence names the parameter
# and the fix (the rows of akash_nb._core.exceptions.INPUT).

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
