"""How things look in a notebook: one table from kind of output to display.

Every display is a mime bundle with a meaningful `text/plain` (what nbval compares and what a terminal
shows) beside a rich form (Markdown or HTML) for JupyterLab and GitHub. Every rendered answer says which
provider and model produced it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from IPython.display import display

from .client import Connection, ModelChoice, _connections, connection, last_latency
from .errors import AkashNBError, explain


@dataclass(frozen=True)
class Kind:
    rich_mime: str
    rich: Callable[[str], str]  # plain text -> rich text


def _markdown(text: str) -> str:
    return text


def _code(text: str) -> str:
    return f"```python\n{text}\n```"


def _box(colour: str) -> Callable[[str], str]:
    def render(text: str) -> str:
        body = html.escape(text).replace("\n", "<br>")
        return (f'<div style="border-left:4px solid {colour};padding:4px 10px;margin:2px 0;'
                f'font-family:var(--jp-ui-font-family,sans-serif)">{body}</div>')
    return render


KINDS: dict[str, Kind] = {
    "answer": Kind("text/markdown", _markdown),
    "code": Kind("text/markdown", _code),
    "transcript": Kind("text/markdown", _markdown),
    "usage": Kind("text/html", _box("#9e9e9e")),
    "banner": Kind("text/html", _box("#1976d2")),
    "note": Kind("text/html", _box("#f9a825")),
    "error": Kind("text/html", _box("#d32f2f")),
}


def bundle(kind: str, text: str, rich: str | None = None) -> dict[str, str]:
    """The mime bundle for `text` shown as `kind` (rich form derived from the text unless given)."""
    spec = KINDS[kind]
    return {"text/plain": text, spec.rich_mime: rich if rich is not None else spec.rich(text)}


def show(kind: str, text: str, rich: str | None = None) -> None:
    display(bundle(kind, text, rich), raw=True)


# --- what the package shows -------------------------------------------------------------------------

def connection_text(conn: Connection) -> str:
    model = conn.model or "chosen from the served models"
    return (f"Provider: {conn.provider.name} — {conn.describe()}\n"
            f"URL: {conn.base_url}\n"
            f"Model: {model}\n"
            f"Key: {conn.key_source}")


def show_connection(conn: Connection) -> None:
    show("banner", connection_text(conn))


def model_choice_text(choice: ModelChoice, conn: Connection) -> str:
    if choice.substituted:
        return (f"{choice.requested} is not served by {conn.provider.name}; using {choice.model} "
                f"({choice.reason}). Served: {', '.join(choice.served)}.")
    return f"Using {choice.model} ({choice.reason}) on {conn.provider.name}."


def show_model_choice(choice: ModelChoice, conn: Connection) -> None:
    show("note" if choice.substituted else "banner", model_choice_text(choice, conn))


def tokens_text(usage) -> str:
    """E.g. "41 prompt (32 cached) + 12 completion tokens": the provider's own count, or that it gave none."""
    if usage is None:
        return "usage not reported"
    details = usage.prompt_tokens_details
    cached = f" ({details.cached_tokens} cached)" if details is not None and details.cached_tokens else ""
    return f"{usage.prompt_tokens} prompt{cached} + {usage.completion_tokens} completion tokens"


def footer(response, client=None, seconds: float | None = None) -> str:
    """One line: who answered (the response's own model, via the client's provider), why it stopped,
    tokens used, and how long it took (the client's last request, unless `seconds` is given)."""
    who = response.model
    if client is not None:
        who += f" via {connection(client).provider.name}"
        seconds = last_latency(client) if seconds is None else seconds
    parts = [who, f"finish_reason={response.choices[0].finish_reason}"]
    if response.usage is not None:
        parts.append(tokens_text(response.usage))
    if seconds is not None:
        parts.append(f"{seconds:.2f} s")
    return " · ".join(parts)


def show_answer(response, client=None, *, seconds: float | None = None, kind: str = "answer") -> None:
    """The reply as Markdown, with the footer saying who answered (see `footer`)."""
    text = response.choices[0].message.content or ""
    show(kind, text)
    show("usage", footer(response, client, seconds))


# --- errors in notebooks as one sentence --------------------------------------------------------------

def _connection_of(error: BaseException) -> Connection | None:
    """The connection the failed request went to: the client whose base URL the request's URL starts
    with (not the last client made: a notebook may hold several)."""
    import openai

    if not isinstance(error, openai.APIError) or error.request is None:
        return None
    url = str(error.request.url)
    matches = [conn for conn in _connections.values() if conn.base_url and url.startswith(conn.base_url)]
    return max(matches, key=lambda conn: len(conn.base_url), default=None)


def error_sentence(error: BaseException) -> AkashNBError:
    conn = _connection_of(error)
    if conn is None:
        return explain(error, "the provider")
    return conn.explain(error)


def show_error(error: BaseException) -> None:
    sentence = error_sentence(error).sentence
    show("error", f"Error: {sentence}")


def install_error_display() -> None:
    """In IPython, show our errors and the SDK's as one sentence instead of a 40-line traceback.

    The cell still fails as an error (so `Run all` stops, and nbval reports the sentence); the
    error's traceback is the sentence alone. `%tb` shows the full traceback, and the exception, with the
    original as `.original`, stays in `sys.last_value`.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    import json

    import openai

    def handler(shell, etype, value, tb, tb_offset=None):
        explained = error_sentence(value)
        stb = [f"\x1b[31m{type(explained).__name__}\x1b[0m: {explained.sentence} (full traceback: %tb)"]
        # IPython ignores a custom handler's return value; _showtraceback is what its own showtraceback
        # calls to send the error to the front end (and to nbval, which reports it).
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc((AkashNBError, openai.OpenAIError, json.JSONDecodeError), handler)
