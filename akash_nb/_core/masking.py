"""Masking keys by value: `remember(key)` once, and `mask(text)` replaces it wherever text is shown."""

from __future__ import annotations

import functools
import re
import threading

MIN_MASKED = 8  # shorter values are not keys worth masking by value (and would mask ordinary words)
_known: set[str] = set()
_known_lock = threading.Lock()


def remember(value: str) -> None:
    """Mask `value` in every text `mask()` sees from now on (what `Secret(value)` does)."""
    if (
        not isinstance(value, str)
        or not MIN_MASKED <= len(value) <= 4096
        or not value.isascii()
        or not value.isprintable()
        or " " in value
    ):
        return  # not a key any provider would accept, so not one that can be sent or echoed
    with _known_lock:
        _known.add(value)


@functools.lru_cache(maxsize=8)
def _pattern_for(values: frozenset[str]) -> re.Pattern[str]:
    # Longest first, so a key that contains another is masked whole. A proxy's "...WXYZ" (the last four
    # characters after an ellipsis) is masked too.
    ordered = sorted(values, key=len, reverse=True)
    whole = "|".join(re.escape(v) for v in ordered)
    tails = "|".join(re.escape(v[-4:]) for v in ordered)
    return re.compile(f"(?:{whole})|(?:\\.\\.\\.|…)(?:{tails})")


def mask(text: str) -> str:
    """`text` with every remembered key value replaced by its masked form (see docs/architecture.md)."""
    if not isinstance(text, str):
        return text
    with _known_lock:  # the pattern always says what `_known` holds now: it is made from it, never kept apart
        values = frozenset(_known)
    if not values:
        return text
    if "..." not in text and "…" not in text and not any(v in text for v in values):
        return text  # a substring search is fast; the pattern is not (a 50 MB error body took a second)
    return _pattern_for(values).sub(
        lambda m: _masked(m.group(0)) if not m.group(0).startswith(("...", "…")) else "****", text
    )


# Whatever looks like a key in a server's text (LiteLLM echoes the key it got; a key never remembered here,
# a plain openai.OpenAI's) is masked too where a server's string is quoted.
_KEYLIKE = re.compile(r"\b(sk-|akml-|Bearer\s+)[^\s,;\"']{3,}")


def mask_all(text: str) -> str:
    """`text` with every remembered key masked by value (`mask`), then key-shaped tokens (sk-..., akml-...,
    Bearer ...) masked too: for a server's string we quote, never for an answer's text."""
    text = mask(text)
    if not isinstance(text, str) or ("sk-" not in text and "akml-" not in text and "Bearer" not in text):
        return text  # the substring searches are fast; the pattern over a 50 MB body is not
    return _KEYLIKE.sub(lambda m: m.group(1) + "****", text)


def _masked(value: str) -> str:
    # A known prefix says which provider the key belongs to without saying anything secret.
    for prefix in ("akml-", "sk-"):
        if value.startswith(prefix):
            return f"{prefix}****"
    return "****"
