"""A key that cannot leak by accident: its repr, str and format are masked, and so is its value wherever
the package shows text.

Masking by shape (`sk-...`, `akml-...`, `Bearer ...`) misses a key of any other shape: the embedded and
class servers' own keys have no prefix, and a server may echo the key it received (LiteLLM does). So every
`Secret` made in this process is remembered, and `mask(text)` replaces each remembered value (and the
`...last4` form proxies echo) before the text reaches the user: error sentences (every `AkashNBError`),
displays (`akash_nb.render.show`), doctor's table, reprs. Code that prints other text, such as the class
server's log or a share announcement's surroundings, passes it through `mask()` too.
"""

from __future__ import annotations

import hmac
import re
import threading

MIN_MASKED = 8  # shorter values are not keys worth masking by value (and would mask ordinary words)
_known: set[str] = set()
_known_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def remember(value: str) -> None:
    """Mask `value` in every text `mask()` sees from now on (what `Secret(value)` does)."""
    global _pattern
    if not isinstance(value, str) or not MIN_MASKED <= len(value) <= 4096 or not value.isascii() \
            or not value.isprintable() or " " in value:
        return  # not a key any provider would accept, so not one that can be sent or echoed
    with _known_lock:
        if value in _known:
            return
        _known.add(value)
        # Longest first, so a key that contains another is masked whole. A proxy's "...WXYZ" (the last four
        # characters after an ellipsis) is masked too.
        values = sorted(_known, key=len, reverse=True)
        whole = "|".join(re.escape(v) for v in values)
        tails = "|".join(re.escape(v[-4:]) for v in values)
        _pattern = re.compile(f"(?:{whole})|(?:\\.\\.\\.|…)(?:{tails})(?![A-Za-z0-9_-])")


def mask(text: str) -> str:
    """`text` with every remembered key value replaced by its masked form (see the module docstring)."""
    pattern = _pattern
    if pattern is None or not isinstance(text, str):
        return text
    return pattern.sub(lambda m: _masked(m.group(0)) if not m.group(0).startswith(("...", "…")) else "****",
                       text)


def _masked(value: str) -> str:
    # A known prefix says which provider the key belongs to without saying anything secret.
    for prefix in ("akml-", "sk-"):
        if value.startswith(prefix):
            return f"{prefix}****"
    return "****"


class Secret:
    """Holds an API key. Only `reveal()` gives the value; everything else shows a masked form."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            from .errors import input_error

            raise input_error("wrong-type", name="value", expected="the key as text (a str)",
                              got=type(value).__name__, example="Secret('akml-...')")
        self._value = value
        remember(value)

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        return _masked(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.masked})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(other._value.encode(), self._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickled into a file by accident
        raise TypeError("A Secret cannot be pickled.")
