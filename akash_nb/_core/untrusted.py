"""What a server sends is untrusted: `shown(text)` is any server string as a sentence may quote it (masked,
bounded, its control characters and terminal escapes made visible, on one line), `shown_list(items)` a
few of many, `shown_url(url)` a URL without its user-info; `urlopen()` is urllib's, but a redirect to
another origin never carries our Authorization header there."""

from __future__ import annotations

import unicodedata
import urllib.request
from collections.abc import Callable, Iterable
from http.client import HTTPMessage
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from . import masking

QUOTE_LIMIT = 300  # characters of a server's string quoted in one sentence; the rest is counted
LIST_LIMIT = 5  # items of a server's list named in one sentence; the rest is counted
ITEM_LIMIT = 80  # characters of each of those items
_LONGEST_KEY = 4096  # masking.remember's limit: a key cut at the quote's end is masked whole first


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _one_line(char: str) -> str:
    if char == "\n":
        return "\\n"  # an id with a newline cannot start a line of our own output
    if char.isprintable() or char == " " or unicodedata.category(char) == "Zs":
        return char
    return _visible(char)  # ESC (so no terminal sequence), CR, backspace, C1, bidi overrides, zero-width


def shown(value: object, limit: int = QUOTE_LIMIT, *, mask: Callable[[str], str] = masking.mask_all) -> str:
    """`value` (a server's message, id or header) as one of our sentences may quote it: every remembered
    key and key-shaped token masked (by `mask`), at most `limit` characters and
    then "… (N more characters)", every character that is not printable shown as an escape (\\x1b, \\r,
    \\u202e), and a newline as \\n, so it stays on one line."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    more = len(text) - limit
    # Masked before it is cut, so no part of a key shows; only the head is masked (a 50 MB body is not).
    head = mask(text[: limit + _LONGEST_KEY])[:limit] if more > 0 else mask(text)
    quoted = "".join(_one_line(c) for c in head)
    return f"{quoted}… ({more} more characters)" if more > 0 else quoted


def answer(text: str) -> str:
    """An answer's text as shown and kept: every remembered key masked by value (a model may repeat a key
    the prompt held), and every control character but newline and tab made a visible escape (\\x1b), so no
    terminal sequence in an answer reaches a screen. Its length and lines are the model's."""
    masked = masking.mask(text)
    if all(c.isprintable() or c in "\n\t" for c in masked):
        return masked
    return "".join(c if c.isprintable() or c in "\n\t" else _visible(c) for c in masked)


def shown_list(items: Iterable[object], first: int = LIST_LIMIT, limit: int = ITEM_LIMIT) -> str:
    """A server's list (model ids) as a sentence names it: the first `first` items, each `shown`, then
    "and N more"."""
    listed = list(items)
    named = ", ".join(shown(item, limit) for item in listed[:first])
    more = len(listed) - first
    return f"{named} and {more} more" if more > 0 else named


def shown_url(url: object) -> str:
    """`url` as shown: its user-info (user:pass@, a secret) replaced by ****@, then `shown`."""
    text = url if isinstance(url, str) else "" if url is None else str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return shown(text)
    if "@" in parts.netloc:
        text = urlunsplit(parts._replace(netloc="****@" + parts.netloc.rpartition("@")[2]))
    return shown(text)


def has_user_info(url: str) -> bool:
    """Whether `url` carries a user name or password (http://user:pass@host/v1)."""
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, but Authorization (and Cookie) stays behind when the redirect goes to another
    scheme, host or port: urllib itself copies every header to wherever a server points."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(req.full_url) != _origin(new.full_url):
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)
        return new


_opener = urllib.request.build_opener(_SameOriginCredentials)


def urlopen(request: urllib.request.Request, timeout: float) -> Any:
    """`urllib.request.urlopen(request, timeout=timeout)` through the opener every urllib request of the
    package uses (`_SameOriginCredentials`)."""
    return _opener.open(request, timeout=timeout)
