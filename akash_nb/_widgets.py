"""The widgets lessons end with: `Panel`, to try the lesson's call with other settings, and `ChatBox`, to
talk on."""

from __future__ import annotations

import asyncio
import html
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import mistune
import openai
from IPython.lib.pretty import PrettyPrinter
from openai.types import CompletionUsage

from . import _render as render
from . import _streaming as streaming
from ._conversation import Conversation
from ._core import exceptions, parameters, untrusted
from ._core import failures as errors
from ._core import in_browser as browser
from ._core import request_checks as preflight
from ._core.connection import Connection, connection_for, connection_or_unknown, resolve_model
from ._engine import llama_server

# Context window per provider, the upper bound of the max_tokens box; others get DEFAULT_CONTEXT_TOKENS.
CONTEXT_TOKENS: dict[str, int] = {
    "local": llama_server.CONTEXT_TOKENS,
    "browser": browser.MODEL_CONTEXT_TOKENS,
}
DEFAULT_CONTEXT_TOKENS = 32_768
REDRAW_SECONDS = 0.05  # redraw a streaming answer at most this often: each redraw is one comm message
CURSOR = " ▌"  # shown at the end of an answer that is still arriving
NOTHING_TO_SEND = "There is nothing to send: write a prompt (or a system prompt), then press Run."

_markdown = mistune.create_markdown(escape=True, plugins=["strikethrough", "table"])


def markdown_html(text: str) -> str:
    """Model output as HTML: Markdown rendered, raw HTML escaped, javascript: links dropped (mistune)."""
    return f'<div class="akash-nb-answer">{_markdown(text)}</div>'


_pressing: set[asyncio.Future[None]] = set()


def _pressed(action: Callable[[], object]) -> Callable[[Any], None]:
    """A button's callback that runs `action`. In a browser tab (Pyodide) a widget's callback is a comm
    message, called synchronously, where the HTTP transport cannot wait for fetch (JSPI's run_sync refuses:
    "the Python entrypoint was a synchronous function"); there the action runs as an asyncio task, inside
    which it can. Everywhere else it runs at once, as before."""

    def callback(_widget: Any) -> None:
        if sys.platform == "emscripten":
            from pyodide.ffi import can_run_sync  # type: ignore[import-not-found]

            if not can_run_sync():

                async def later() -> None:
                    try:
                        action()
                    except Exception as error:  # noqa: BLE001 (nothing to return it to: show it, as a cell would)
                        render.show_error(error)

                task = asyncio.ensure_future(later())
                _pressing.add(task)  # a task nobody references may be collected before it runs
                task.add_done_callback(_pressing.discard)
                return
        action()

    return callback


def _error_html(text: str) -> str:
    return render.KINDS["error"].rich(text)


def _usage_html(text: str) -> str:
    return render.KINDS["usage"].rich(text)


# --- Panel --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What one run of a panel produced."""

    provider: str  # the provider's name, e.g. "local"
    text: str = ""  # the answer (partial if the stream was cut)
    model: str | None = None  # the model the response chunks name; None if no chunk arrived
    finish_reason: str | None = None
    usage: CompletionUsage | None = None  # None when the server did not report usage
    seconds: float = 0.0  # from sending the request to the end of the stream (or the error)
    first_token_seconds: float | None = None  # from sending the request to the first text
    error: str | None = None  # the one sentence, when the request failed or the stream was cut
    request: dict[str, Any] = field(default_factory=dict)  # what was sent: model, messages, temperature, ...
    interrupted: bool = False  # Ctrl-C or the stop button stopped the stream (the text so far is kept)
    note: str | None = None  # shown instead of the text when the answer is only tool calls

    @classmethod
    def refused(cls, conn: Connection, sentence: str | None) -> Result:
        """A run that sent nothing: the models could not be listed, or the request cannot work."""
        return cls(provider=conn.name, error=sentence)

    @property
    def sent(self) -> bool:
        """A request went out (False when the models could not be listed or the request was refused)."""
        return bool(self.request)

    @property
    def cut(self) -> bool:
        """Some text arrived, then the stream failed or ended early."""
        return self.error is not None and self.text != ""

    def usage_line(self) -> str:
        """One line: who answered, via which provider, why it stopped, tokens, and latency."""
        return render.footer_text(
            self.model,
            self.provider,
            self.finish_reason,
            self.usage,
            seconds=self.seconds,
            first_token_seconds=self.first_token_seconds,
            streamed=True,
        )

    def answer_text(self) -> str:
        """The answer as plain text, with a cut or a failure said in words."""
        if self.error is None:
            return self.text or self.note or ""
        if self.text:
            return f"{self.text}\n(cut off: {self.error})"
        return f"Error: {self.error}"

    def answer_html(self) -> str:
        if self.error is None:
            return markdown_html(self.text) if self.text or not self.note else _usage_html(self.note)
        if self.text:
            return markdown_html(self.text) + _error_html(f"(cut off: {self.error})")
        return _error_html(f"Error: {self.error}")

    def __str__(self) -> str:
        return f"{self.answer_text()}\n{self.usage_line()}"

    def _repr_pretty_(self, printer: PrettyPrinter, cycle: bool) -> None:
        printer.text(str(self))


def create_code(request: dict[str, Any]) -> str:
    """The plain-openai call a panel run sends, as code a learner can paste after the guide's client block
    (the panel streams, so it passes stream=True and asks for usage on the last chunk)."""
    lines = ["stream = client.chat.completions.create("]
    lines += [f"    {name}={value!r}," for name, value in request.items()]
    lines += ["    stream=True,", '    stream_options={"include_usage": True},', ")"]
    lines += [
        "for chunk in stream:",
        "    if chunk.choices and chunk.choices[0].delta.content:",
        '        print(chunk.choices[0].delta.content, end="")',
    ]
    return "\n".join(lines)


def models_note(served: list[str], provider: str) -> str:
    """Why the model dropdown holds what it holds: one entry is the provider's whole list, not a bug."""
    if len(served) == 1:
        return (
            f"model: {provider} serves one model, so the list has one entry (client.models.list() "
            "names it alone); AkashML and your own servers may serve several."
        )
    return f"model: the {len(served)} models {provider} serves (client.models.list())."


def _split(
    messages: list[dict[str, Any]] | None, system: str | None, prompt: str | None
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """Split a guide-style `messages` list into (earlier messages, system prompt, prompt) for the boxes:
    a leading system message fills the system box (unless `system` is given, which replaces it) and a
    trailing user message fills the prompt box (unless `prompt` is given)."""
    history = [dict(m) for m in messages or []]
    if history and history[0].get("role") == "system":
        first = history.pop(0)
        system = first.get("content") if system is None else system
    if prompt is None and history and history[-1].get("role") == "user":
        prompt = history.pop()["content"]
    return history, system, prompt


class Panel(widgets.VBox):
    """Model, temperature, max_tokens, system prompt and prompt, a Run button, and the streamed answer.

    `run()` does what clicking Run does and returns the `Result` (also kept as `.result`). Nothing here
    raises for a failed request: the failure is one sentence inside the panel and in `result.error`.

    `messages` may be the lesson's own list: its leading system message fills the system box and its
    last user message fills the prompt box; messages between them are sent before the prompt.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        prompt: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 128,
        system: str | None = None,
    ):
        _check_panel_arguments(prompt, messages, model, temperature, max_tokens, system)
        self.client = client
        self.conn = connection_for(client)
        self.history, system, prompt = _split(messages, system, prompt)
        self.result: Result | None = None
        self.problem: str | None = None  # why the served models could not be listed, if they could not
        self._requested_model = model

        context = self._context = CONTEXT_TOKENS.get(self.conn.provider.name, DEFAULT_CONTEXT_TOKENS)
        self.model = widgets.Dropdown(description="model", options=[])
        # description_width "initial": the label's own width, so "temperature" is not cut to "temperat…"
        self.temperature = widgets.FloatSlider(
            value=temperature,
            min=0.0,
            max=2.0,
            step=0.1,
            readout_format=".1f",
            description="temperature",
            style={"description_width": "initial"},
        )
        self.max_tokens = widgets.BoundedIntText(
            value=min(max(max_tokens, 1), context), min=1, max=context, description="max_tokens"
        )
        self.system = widgets.Textarea(
            value=system or "",
            placeholder="System prompt (optional)",
            description="system",
            layout=widgets.Layout(width="100%"),
        )
        self.prompt = widgets.Textarea(
            value=prompt or "",
            placeholder="Write a prompt, then press Run",
            description="prompt",
            layout=widgets.Layout(width="100%", height="5em"),
        )
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.answer = widgets.HTML()
        self.usage = widgets.HTML()
        earlier = widgets.HTML(
            _usage_html(f"plus {len(self.history)} earlier messages, sent before the prompt")
            if self.history
            else ""
        )
        self.models_line = widgets.HTML()
        self.code_button = widgets.ToggleButton(description="Show code", icon="code", value=False)
        self.code = widgets.HTML(layout=widgets.Layout(display="none"))
        self.run_button.on_click(_pressed(self.run))
        self.code_button.observe(lambda _change: self._show_code(), names="value")
        for box in (self.model, self.temperature, self.max_tokens, self.system, self.prompt):
            box.observe(lambda _change: self._show_code(), names="value")
        self._load_models()
        super().__init__(
            [
                widgets.HBox([self.model, self.temperature, self.max_tokens]),
                self.models_line,
                self.system,
                earlier,
                self.prompt,
                widgets.HBox([self.run_button, self.code_button]),
                self.code,
                self.answer,
                self.usage,
            ]
        )
        self._show_code()

    def code_text(self) -> str:
        """The exact create() call the next run sends, as plain openai code."""
        return create_code(self.request())

    def _show_code(self) -> None:
        shown = self.code_button.value
        self.code_button.description = "Hide code" if shown else "Show code"
        self.code.layout.display = None if shown else "none"
        self.code.value = f'<pre class="akash-nb-code">{html.escape(self.code_text())}</pre>' if shown else ""

    def _load_models(self) -> bool:
        """Fill the dropdown from the provider's live /models; on failure show why in the panel."""
        try:
            choice = resolve_model(self.client, self._requested_model)
        except exceptions.AkashNBError as exc:
            self.problem = exc.sentence
            self.answer.value = _error_html(f"Error: {exc.sentence}")
            return False
        self.problem = None
        # Each shown as a bounded, escaped label (the server chose the ids), each the real id as its value.
        self.model.options = [(untrusted.shown(m, 100), m) for m in choice.served]
        self.model.value = choice.model
        self.models_line.value = _usage_html(models_note(list(choice.served), self.conn.name))
        return True

    def messages(self) -> list[dict[str, Any]]:
        """The messages a run sends: system prompt (if any), earlier messages, then the prompt."""
        sent = [{"role": "system", "content": self.system.value}] if self.system.value.strip() else []
        sent += [dict(m) for m in self.history]
        if self.prompt.value.strip():
            sent.append({"role": "user", "content": self.prompt.value})
        return sent

    def request(self) -> dict[str, Any]:
        """The arguments a run passes to client.chat.completions.create (besides the streaming ones)."""
        return {
            "model": self.model.value,
            "messages": self.messages(),
            "temperature": self.temperature.value,
            "max_tokens": self.max_tokens.value,
        }

    def run(self) -> Result:
        """Send the request, stream the answer into the panel, and return the `Result`."""
        if self.model.value is None and not self._load_models():
            return self._finish(Result.refused(self.conn, self.problem))
        if not self.messages():
            return self._finish(Result.refused(self.conn, NOTHING_TO_SEND))
        request = self.request()
        try:  # a request that cannot work is refused here, in one sentence, before anything is sent
            preflight.check_request(
                request["messages"],
                model=request["model"],
                temperature=request["temperature"],
                max_tokens=request["max_tokens"],
                context_tokens=self._context,
            )
        except exceptions.AkashNBError as problem:
            return self._finish(Result.refused(self.conn, problem.sentence))
        self.run_button.disabled = True
        self.usage.value = ""
        self.answer.value = _usage_html(
            f"Asking {untrusted.shown(self.model.value, 100)} via {self.conn.name}…"
        )
        try:
            result = _stream(self.client, self.conn, request, self._draw)
        finally:
            self.run_button.disabled = False
        self._finish(result)
        if result.interrupted:  # the panel is truthful (text kept, marked cut); the cell stops as asked
            raise KeyboardInterrupt
        return result

    def _draw(self, text: str) -> None:
        self.answer.value = markdown_html(text + CURSOR)

    def _finish(self, result: Result) -> Result:
        self.result = result
        self.answer.value = result.answer_html()
        self.usage.value = _usage_html(result.usage_line()) if result.sent else ""
        return result

    def header(self) -> str:
        model = untrusted.shown(self.model.value or "none", 100)  # an id the server listed: untrusted
        return (
            f"Panel · model {model} · temperature {self.temperature.value:.1f} · "
            f"max_tokens {self.max_tokens.value} · [Run]"
        )

    def __repr__(self) -> str:
        lines = [self.header()]
        if self.system.value.strip():
            lines.append(f"System: {self.system.value}")
        if self.history:
            lines.append(f"(plus {len(self.history)} earlier messages)")
        lines.append(f"Prompt: {self.prompt.value}")
        if self.result is not None:
            lines.append(self.result.answer_text())
            if self.result.sent:
                lines.append(self.result.usage_line())
        elif self.problem is not None:
            lines.append(f"Error: {self.problem}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)  # not truncated: this is what nbval compares
        return bundle


class _Arrivals:
    """The text of a stream as it arrives: when its first piece came, and a redraw at most every
    REDRAW_SECONDS (each redraw is one comm message to the front end)."""

    def __init__(self, draw: Callable[[str], None]) -> None:
        self.started = self._drawn = time.monotonic()
        self.first: float | None = None  # seconds from the start to the first text
        self.text = ""
        self._draw = draw

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        self.first = now - self.started if self.first is None else self.first
        self.text = text
        if now - self._drawn >= REDRAW_SECONDS:
            self._draw(text)
            self._drawn = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def _stream(
    client: openai.OpenAI, conn: Connection, request: dict[str, Any], draw: Callable[[str], None]
) -> Result:
    """Make the streaming call and collect it into a Result; any failure becomes the Result's sentence."""
    arrived = _Arrivals(draw)
    try:
        stream = client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        got = streaming.collect_stream(stream, conn, on_text=arrived)
    # Ctrl-C or the stop button: whatever arrived is kept, marked cut. Every other failure is shown as its
    # sentence, never a traceback.
    except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001
        return Result(
            text=arrived.text,
            provider=conn.name,
            seconds=arrived.seconds,
            first_token_seconds=arrived.first,
            error=conn.explain(exc).sentence,
            request=request,
            interrupted=isinstance(exc, KeyboardInterrupt),
        )
    return Result(
        text=got.text,
        model=got.model,
        provider=conn.name,
        finish_reason=got.finish_reason,
        usage=got.usage,
        seconds=arrived.seconds,
        first_token_seconds=arrived.first,
        error=got.error.sentence if got.error else None,
        request=request,
        note=got.note,
    )


def _check_panel_arguments(
    prompt: Any, messages: Any, model: Any, temperature: Any, max_tokens: Any, system: Any
) -> None:
    """Each argument of `panel()` is usable, or one sentence names it and the fix (max_tokens above the
    context is lowered to the context by the max_tokens box itself)."""
    parameters.text_param(
        "prompt", prompt, example='akash_nb.panel(client, "Once upon a time")', allow_empty=True
    )
    if messages is not None and (messages or not isinstance(messages, list)):
        preflight.check_messages(messages)
    parameters.text_param("model", model, example="model='SmolLM2-135M-Instruct'", identifier=True)
    parameters.number_param(
        "temperature", temperature, low=0, high=2, example="temperature=0.7", optional=False
    )
    parameters.int_param(
        "max_tokens", max_tokens, low=1, high=10**9, example="max_tokens=128", optional=False
    )
    parameters.text_param("system", system, example="system='You are a helpful assistant.'", allow_empty=True)


# The "Try it" panel for a client, as lessons write it: `akash_nb.panel(client, "Once upon a time")`.
panel = Panel


# --- ChatBox ------------------------------------------------------------------------------------------

_ROLE_COLOURS = {"system": "#9e9e9e", "user": "#1976d2", "assistant": "#2e7d32"}


def _message_html(role: str, content: str) -> str:
    colour = _ROLE_COLOURS.get(role, "#9e9e9e")
    return (
        f'<div style="border-left:4px solid {colour};padding:2px 10px;margin:4px 0">'
        f"<b>{html.escape(role)}</b>{markdown_html(content)}</div>"
    )


class ChatBox:
    """A conversation you continue by typing: transcript, text box, Send button and a status line.

    `send(text)` does what typing `text` and clicking Send does. Only a successful reply joins the
    transcript; after a failure the status line says why in one sentence, the transcript is unchanged,
    and the text stays in the box to send again.

    A wrapper around `.widget` (a VBox) rather than a VBox itself: `Widget.send` already means "send a
    custom message to the front end", and `DOMWidget.focus()` relies on it.
    """

    def __init__(self, conversation: Conversation):
        if not isinstance(conversation, Conversation):
            raise parameters.wrong_type(
                "conversation",
                conversation,
                expected="an akash_nb.Conversation",
                example="akash_nb.ChatBox(akash_nb.Conversation(client, model))",
            )
        self.conversation = conversation
        self.transcript = widgets.HTML()
        self.text = widgets.Textarea(
            placeholder="Write a message, then press Send", layout=widgets.Layout(width="100%", height="4em")
        )
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self.status = widgets.HTML()
        self.status_text = ""  # the status line as plain text
        self.send_button.on_click(_pressed(self.send))
        self.widget = widgets.VBox([self.transcript, self.text, self.send_button, self.status])
        self._draw()

    def send(self, text: str | None = None) -> str | None:
        """Send `text` (default: what is in the text box) and return the reply, or None if it failed."""
        parameters.text_param("text", text, example="chatbox.send('Hello')", allow_empty=True)
        if text is not None:
            self.text.value = text
        message = self.text.value
        arrived = _Arrivals(lambda so_far: self._draw(pending=(message, so_far + CURSOR)))

        self.send_button.disabled = True
        self._set_status("Sending…", error=False)
        try:
            reply = self.conversation.send(
                message, stream=True, on_text=arrived, stream_options={"include_usage": True}
            )
        except KeyboardInterrupt as exc:  # Ctrl-C: the transcript unchanged, the text so far shown as cut
            self._draw()
            self._failed(errors.explain(exc).sentence)
            raise
        except Exception as exc:  # noqa: BLE001 — every failure is shown as its sentence, never a traceback
            self._draw()
            self._failed(self._connection().explain(exc).sentence)
            return None
        finally:
            self.send_button.disabled = False
        self.text.value = ""
        self._draw()
        self._set_status(self._usage_line(arrived.first), error=False)
        return reply

    def _connection(self) -> Connection:
        # Conversation also accepts a plain openai.OpenAI that akash_nb has not seen
        return connection_or_unknown(self.conversation.client)

    def _usage_line(self, first: float | None) -> str:
        response = self.conversation.last_response
        assert response is not None  # called after a reply arrived
        return render.footer_text(
            response.model,
            self._connection().label,
            response.choices[0].finish_reason,
            response.usage,
            seconds=self.conversation.last_seconds,
            first_token_seconds=first,
            streamed=True,
        )

    def _failed(self, sentence: str) -> None:
        """The sentence in the status line; a cut reply's text above it, outside the transcript."""
        partial = self.conversation.partial
        if partial is None or not partial.text:
            self._set_status(sentence, error=True)
            return
        self.status_text = f"assistant ({partial.label}): {partial.text}\n(cut off: {sentence})"
        self.status.value = _message_html(f"assistant ({partial.label})", partial.text) + _error_html(
            f"(cut off: {sentence})"
        )

    def _set_status(self, text: str, *, error: bool) -> None:
        self.status_text = text
        self.status.value = _error_html(text) if error else _usage_html(text)

    def _draw(self, pending: tuple[str, str] | None = None) -> None:
        """The transcript: the finished turns, plus the message being answered while it streams."""
        shown = [(m["role"], m["content"]) for m in self.conversation.messages]
        if pending is not None:
            shown += [("user", pending[0]), ("assistant", pending[1])]
        self.transcript.value = "".join(_message_html(role, content) for role, content in shown)

    def transcript_text(self) -> str:
        """The finished conversation as plain text, one "role: content" block a message."""
        lines = [f"{m['role']}: {m['content']}" for m in self.conversation.messages]
        return "\n".join(lines) or "(no messages yet)"

    def __repr__(self) -> str:
        lines = ["ChatBox · model " + untrusted.shown(self.conversation.model, 100), self.transcript_text()]
        if self.status_text:
            lines.append(self.status_text)
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle
