"""A key that cannot leak by accident: `Secret` holds it, and its repr, str and format are masked."""

from __future__ import annotations

import hmac

from .exceptions import input_error
from .masking import MIN_MASKED, _masked, mask, remember

__all__ = ["MIN_MASKED", "Secret", "mask", "remember"]


class Secret:
    """Holds an API key. Only `reveal()` gives the value; everything else shows a masked form."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise input_error(
                "wrong-type",
                name="value",
                expected="the key as text (a str)",
                got=type(value).__name__,
                example="Secret('akml-...')",
            )
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

    def __reduce__(self) -> tuple[object, ...]:  # never pickled into a file by accident
        raise TypeError("A Secret cannot be pickled.")
