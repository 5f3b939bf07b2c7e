"""A key that cannot leak by accident: its repr, str and format are masked."""

from __future__ import annotations

import hmac


class Secret:
    """Holds an API key. Only `reveal()` gives the value; everything else shows a masked form."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        # A known prefix says which provider the key belongs to without saying anything secret.
        for prefix in ("akml-", "sk-"):
            if self._value.startswith(prefix):
                return f"{prefix}****"
        return "****"

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
