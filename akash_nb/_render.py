"""How things look in a notebook: one table from kind of output to display, each a mime bundle with a
meaningful `text/plain` beside a rich form, printed as plain text outside IPython."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import openai
from IPython import get_ipython
from IPython.display import display
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion

from ._core import answers, masking, parameters, untrusted
from ._core.connection import Connection, ModelChoice, connection_for, connection_for_url, last_latency, timed
from ._core.exceptions import AkashNBError
from ._core.failures import explain
from ._streaming import StreamResult


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
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 10px;margin:2px 0;'
            f'font-family:var(--jp-ui-font-family,sans-serif)">{body}</div>'
        )

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


def in_ipython() -> bool:
    """A notebook kernel or an IPython terminal (which render mime bundles), not plain Python."""
    return get_ipython() is not None


def show(kind: str, text: str, rich: str | None = None) -> None:
    """Display `text` as `kind` (a key of KINDS), every known key masked; plain Python prints the text."""
    parameters.choice_param("kind", kind, KINDS, example="kind='answer'")
    parameters.text_param("text", text, example="show('note', 'Hello')", optional=False, allow_empty=True)
    parameters.text_param("rich", rich, example="rich='<b>Hello</b>'", allow_empty=True)
    text, rich = masking.mask(text), None if rich is None else masking.mask(rich)
    if in_ipython():
        display(bundle(kind, text, rich), raw=True)
    else:  # plain Python: IPython's display() would print the bundle's dict
        print(text, flush=True)


# --- what the package shows -------------------------------------------------------------------------


def connection_text(conn: Connection) -> str:
    model = conn.model or "chosen from the served models"
    return (
        f"Provider: {conn.name} — {conn.describe()}\n"
        f"URL: {untrusted.shown_url(conn.base_url)}\n"
        f"Model: {model}\n"
        f"Key: {conn.key_source}"
    )


def show_connection(conn: Connection) -> None:
    show("banner", connection_text(conn))


def model_choice_text(choice: ModelChoice, conn: Connection) -> str:
    if choice.substituted:
        return (
            f"{untrusted.shown(choice.requested)} is not served by {conn.name}; using "
            f"{untrusted.shown(choice.model)} ({choice.reason}). "
            f"Served: {untrusted.shown_list(choice.served)}."
        )
    return f"Using {untrusted.shown(choice.model)} ({choice.reason}) on {conn.name}."


def show_model_choice(choice: ModelChoice, conn: Connection) -> None:
    show("note" if choice.substituted else "banner", model_choice_text(choice, conn))


def tokens_text(usage: CompletionUsage | None) -> str:
    """E.g. "41 prompt (32 cached) + 12 completion tokens": the provider's own count, or that it gave none."""
    if usage is None:
        return "usage not reported"
    details = usage.prompt_tokens_details
    cached = f" ({details.cached_tokens} cached)" if details is not None and details.cached_tokens else ""
    return f"{usage.prompt_tokens} prompt{cached} + {usage.completion_tokens} completion tokens"


def footer(
    response: ChatCompletion, client: openai.OpenAI | None = None, seconds: float | None = None
) -> str:
    """One line: who answered (the response's own model, via the client's provider), why it stopped,
    tokens used, and how long it took: `seconds` if given, else the client's last request when the client
    was made by `akash_nb.client()` (a plain `openai.OpenAI` is not timed, so no time is shown)."""
    provider = None
    if client is not None:
        provider = connection_for(client).name
        if seconds is None and timed(client):
            seconds = last_latency(client)
    finish_reason = response.choices[0].finish_reason if response.choices else None
    return footer_text(response.model, provider, finish_reason, response.usage, seconds=seconds)


# Replayed answers come back at once, so their time says nothing about the model: the footer says so.
NOT_TIMED_PROVIDER = "replay"
NOT_MEASURED = "time not measured (replay)"


def footer_text(
    model: str | None,
    provider: str | None,
    finish_reason: str | None,
    usage: CompletionUsage | None,
    *,
    seconds: float | None = None,
    first_token_seconds: float | None = None,
    streamed: bool = False,
) -> str:
    """The one footer line every answer gets, e.g. "SmolLM2-135M-Instruct via local · finish_reason=stop ·
    41 prompt + 12 completion tokens · 0.98 s". `model` is the one the response names, never the one
    requested. A streamed answer (the panel, the ChatBox) always says what usage was reported, and times
    its first token and its total. Under replay the time is "not measured (replay)", never the replay
    server's near-zero one."""
    who = untrusted.shown(model, untrusted.ITEM_LIMIT) if model else "no answer"  # the server's own id
    if provider:
        who += f" via {provider}"
    reason = untrusted.shown(finish_reason, 40) if finish_reason is not None else None  # the server's word
    parts = [who, f"finish_reason={reason}"]
    if usage is not None or streamed:
        parts.append(tokens_text(usage))
    if provider == NOT_TIMED_PROVIDER and (seconds is not None or first_token_seconds is not None):
        # The replay server answers at once: a time measured against it is not the model's time.
        parts.append(NOT_MEASURED)
        return " · ".join(parts)
    if first_token_seconds is not None:
        parts.append(f"first token {first_token_seconds:.2f} s")
    if seconds is not None:
        parts.append(f"total {seconds:.2f} s" if streamed else f"{seconds:.2f} s")
    return " · ".join(parts)


def show_answer(
    response: ChatCompletion | StreamResult,
    client: openai.OpenAI | None = None,
    *,
    seconds: float | None = None,
    kind: str = "answer",
) -> None:
    """The reply as Markdown, with the footer saying who answered (see `footer`).

    `response` is what create() returns, or a stream collected by `streaming.collect_stream`. An answer
    that is only tool calls shows a note naming them; a cut stream shows its text, then why it stopped.
    An answer with no text to show (no choices, no message, a stream that failed before any text) raises
    its one-sentence AkashNBError."""
    if not isinstance(response, ChatCompletion | StreamResult):
        raise parameters.wrong_type(
            "response",
            response,
            expected="a chat completion",
            example="show_answer(client.chat.completions.create(...), client)",
        )
    conn = connection_for(client) if client is not None else None  # one sentence for a plain client
    parameters.number_param("seconds", seconds, low=0, high=1e9, example="seconds=1.5")
    if isinstance(response, StreamResult):
        _show_stream(response, conn.name if conn else None, seconds, kind)
        return
    answer = answers.read(response, conn)
    if answer.problem is not None:
        raise answer.problem
    show(kind, answer.shown)
    show("usage", footer(response, client, seconds))


def _show_stream(result: StreamResult, provider: str | None, seconds: float | None, kind: str) -> None:
    if result.error is not None and not result.text:
        raise result.error
    show(kind, result.text or result.note or "")
    if result.error is not None:
        show("error", f"(cut off: {result.error.sentence})")
    show(
        "usage",
        footer_text(
            result.model, provider, result.finish_reason, result.usage, seconds=seconds, streamed=True
        ),
    )


# --- errors in notebooks as one sentence --------------------------------------------------------------


def error_sentence(error: BaseException) -> AkashNBError:
    """The sentence for `error`, naming the provider the failed request went to (by the request's URL, not
    the last client made: a notebook may hold several)."""
    conn = None
    if isinstance(error, openai.APIError) and error.request is not None:
        conn = connection_for_url(error.request.url)
    return explain(error, conn)


def show_error(error: BaseException) -> None:
    sentence = error_sentence(error).sentence
    show("error", f"Error: {sentence}")
