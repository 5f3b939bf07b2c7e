"""`Conversation`: the guide's multi-turn pattern, made reliable: a turn joins the history only when its call
succeeded, a cut reply is kept apart, old turns are trimmed to a token budget, and `save()` never loses the
file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from . import _render as render
from . import _streaming as streaming
from ._clients import NO_KEY
from ._core import answers, exceptions, parameters
from ._core import failures as errors
from ._core import request_checks as preflight
from ._core.connection import connection_or_unknown
from ._core.exceptions import AkashNBError
from ._core.files import read_text, write_atomically
from ._core.request_checks import estimate_tokens

DEFAULT_SYSTEM = "You are a helpful assistant."
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators: what chat templates add around each message
_SET_BY_CONVERSATION = ("model", "messages", "stream")


class ConversationError(AkashNBError, ValueError):
    """A conversation cannot do what was asked as given (empty message, over budget, bad file, ...)."""


# What the user sees when the conversation itself refuses; provider failures (a cut stream too) are
# explained by akash_nb._core.failures.
SENTENCES: dict[str, str] = {
    "empty": "There is nothing to send: the message is empty; write a question, e.g. "
    "conversation.send('Who won the FIFA World Cup in 2022?').",
    "not-text": "A message must be text (a str), not {kind}.",
    "set-by-conversation": "{name}= is set by the conversation itself; pass only create() parameters such "
    "as temperature= or max_tokens=.",
    "on-text-needs-stream": "on_text= is called with streamed text, so it needs stream=True: "
    "conversation.send(text, stream=True, on_text=...).",
    "bad-budget": "budget_tokens must be a positive whole number of tokens, not {budget!r}.",
    "too-large": "{what} does not fit the budget: it needs about {need} tokens, {over} more than "
    "budget_tokens={budget}; shorten it, or raise budget_tokens.",
    "nothing-to-retry": "There is nothing to retry: every message sent so far was answered; use "
    "conversation.send(...) for a new one.",
    "missing": "There is no saved conversation at {path}; save one first with conversation.save(path).",
    "not-a-conversation": "{path} is not a saved conversation ({why}); load a file written by "
    "conversation.save(path).",
    "cannot-save": "Could not save the conversation to {path}: {why}.",
    "key-in-file": "Refusing to save to {path}: the conversation contains the client's API key; remove "
    "it from the messages and parameters first.",
}


def estimate_message_tokens(messages: list[dict[str, Any]]) -> int:
    """The estimated tokens of chat messages: each message's text (`preflight.estimate_tokens`, an estimate:
    real counts depend on the tokenizer) plus MESSAGE_OVERHEAD_TOKENS."""
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


@dataclass(frozen=True)
class Turn:
    """One exchange: the user's message and the assistant's (complete) reply."""

    user: str
    assistant: str

    def messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]

    @property
    def tokens(self) -> int:
        return estimate_message_tokens(self.messages())


@dataclass(frozen=True)
class Partial:
    """A streamed reply that stopped before the model finished. It is never part of the history."""

    user: str  # the message it answers (also in Conversation.pending)
    text: str  # what arrived before the cut
    sentence: str  # why it stopped, as shown to the user
    label: str = "cut"


class Conversation:
    """A chat that keeps its context, as in the guide's "Conversation with AkashChat".

        conversation = Conversation(client, model, temperature=0, max_tokens=200)
        conversation.send("Who won the FIFA World Cup in 2022?")
        conversation.send("Can you tell me more about that?")
        conversation.messages         # the guide's `messages` list, system message first

    `params` are the default `create()` parameters for every call (a call's own parameters win).
    `budget_tokens` (optional) caps the estimated tokens of the messages sent, not of the reply: leave
    room for max_tokens within the model's context window.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        model: str,
        *,
        system: str | None = DEFAULT_SYSTEM,
        budget_tokens: int | None = None,
        **params: Any,
    ) -> None:
        if not isinstance(client, openai.OpenAI):
            raise parameters.wrong_type(
                "client", client, expected="an openai.OpenAI client", example="client = akash_nb.client()"
            )
        parameters.text_param(
            "model", model, example="model=akash_nb.choose_model(client)", optional=False, identifier=True
        )
        parameters.text_param(
            "system", system, example="system='You are a helpful assistant.'", allow_empty=True
        )
        _check_params(params)
        if budget_tokens is not None and not (type(budget_tokens) is int and budget_tokens > 0):
            raise ConversationError(SENTENCES["bad-budget"].format(budget=budget_tokens))
        self.client = client  # replace it (e.g. with a working one) and call retry()
        self.model = model
        self.system = system
        self.budget_tokens = budget_tokens
        self.params = dict(params)
        self._turns: list[Turn] = []
        self.pending: str | None = None  # the user's text whose reply has not arrived (see retry())
        self.partial: Partial | None = None  # the last streamed reply that was cut off, if any
        self.last_response: ChatCompletion | None = None  # the last successful answer, as the SDK gives it
        self.last_request: dict[str, Any] | None = (
            None  # model, messages (after trimming) and params last sent
        )
        self.last_seconds: float | None = None  # how long the last successful call took

    # --- what the conversation holds ----------------------------------------------------------------

    @property
    def history(self) -> tuple[Turn, ...]:
        """The completed turns, oldest first."""
        return tuple(self._turns)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A copy of the whole conversation as chat messages: the system message (if any) first."""
        system = [{"role": "system", "content": self.system}] if self.system is not None else []
        return system + [m for turn in self._turns for m in turn.messages()]

    def trimmed(
        self, budget_tokens: int | None = None, next_message: str | None = None
    ) -> list[dict[str, Any]]:
        """The messages to send within `budget_tokens` (default: the conversation's budget; None: all).

        Kept: the system message, the newest user message (`next_message`, or else the newest turn), and
        as many of the most recent turns as fit, whole. Older turns are left out of the request only; the
        history keeps them. Raises a one-sentence ConversationError when the newest message does not fit.
        """
        parameters.int_param("budget_tokens", budget_tokens, low=1, high=10**12, example="budget_tokens=2000")
        parameters.text_param("next_message", next_message, example="next_message='Hello'", allow_empty=True)
        budget = self.budget_tokens if budget_tokens is None else budget_tokens
        older = list(self._turns)
        if next_message is not None:
            newest = [{"role": "user", "content": next_message}]
        else:
            newest = older.pop().messages() if older else []
        system = [{"role": "system", "content": self.system}] if self.system is not None else []
        if budget is None:
            return system + [m for turn in older for m in turn.messages()] + newest
        need = estimate_message_tokens(system + newest)
        if need > budget:
            what = "The newest message (with the system message)" if newest else "The system message"
            raise ConversationError(
                SENTENCES["too-large"].format(what=what, need=need, over=need - budget, budget=budget)
            )
        kept: list[Turn] = []
        for turn in reversed(older):  # newest first; stop at the first that does not fit, leaving no gap
            if need + turn.tokens > budget:
                break
            need += turn.tokens
            kept.insert(0, turn)
        return system + [m for turn in kept for m in turn.messages()] + newest

    # --- talking to the model ------------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        stream: bool = False,
        on_text: Callable[[str], object] | None = None,
        **params: Any,
    ) -> str:
        """Send `text` as the next user message and return the reply.

        Only a successful reply adds the turn to the history. On any failure the history is unchanged,
        `text` stays in `.pending` for `retry()`, and an AkashNBError with one sentence is raised.
        With `stream=True`, `on_text(text_so_far)` is called as the reply arrives.
        """
        if not isinstance(text, str):
            raise ConversationError(SENTENCES["not-text"].format(kind=type(text).__name__))
        if not text.strip():
            raise ConversationError(SENTENCES["empty"])
        parameters.text_param("text", text, example="conversation.send('Hello')")  # huge text, say
        parameters.bool_param("stream", stream, example="stream=True")
        if on_text is not None and not callable(on_text):
            raise parameters.wrong_type(
                "on_text", on_text, expected="a function of the text so far", example="on_text=print"
            )
        if on_text is not None and not stream:
            raise ConversationError(SENTENCES["on-text-needs-stream"])
        _check_params(params)
        request = {"model": self.model, "messages": self.trimmed(next_message=text), **self.params, **params}
        preflight.check_request(
            request["messages"],
            model=self.model,
            temperature=request.get("temperature"),
            max_tokens=request.get("max_tokens"),
        )  # refused before sending, history intact
        parameters.check_parameters(request)
        parameters.check_json({**self.params, **params})
        self.pending, self.partial = text, None
        started = time.monotonic()
        if stream:
            response = self._stream(request, text, on_text)
        else:
            try:
                raw = self.client.chat.completions.with_raw_response.create(**request)
                # Without this check the SDK hands back a web page (a wrong base URL) as a plain str.
                errors.check_content_type(raw.http_response)
                response = raw.parse()
            except (openai.OpenAIError, ValueError) as error:  # ValueError: a body that is not JSON
                raise self._explain(error) from error
        answer = answers.read(response, connection_or_unknown(self.client))
        if answer.problem is not None:  # no choices, or a choice with no message: history intact
            raise answer.problem
        if answer.note is not None:  # only tool calls: a turn of text cannot hold them
            raise self._only_tool_calls(answer.tool_calls)
        reply = answer.text
        self._turns.append(Turn(text, reply))
        self.pending = None
        self.last_response, self.last_request = response, request
        self.last_seconds = time.monotonic() - started
        return reply

    def retry(self, **params: Any) -> str:
        """Send the pending message again (after a failure), e.g. once `client` points at a working one."""
        if self.pending is None:
            raise ConversationError(SENTENCES["nothing-to-retry"])
        return self.send(self.pending, **params)

    def _stream(
        self, request: dict[str, Any], text: str, on_text: Callable[[str], object] | None
    ) -> ChatCompletion:
        try:
            chunks = self.client.chat.completions.create(**request, stream=True)
        except (openai.OpenAIError, ValueError) as error:
            raise self._explain(error) from error
        arrived = ""

        def collect(so_far: str) -> None:
            nonlocal arrived
            arrived = so_far
            if on_text is not None:
                on_text(so_far)

        try:
            result = streaming.collect_stream(chunks, connection_or_unknown(self.client), on_text=collect)
        except KeyboardInterrupt:  # Ctrl-C or the stop button: the history is unchanged, the text kept
            self.partial = Partial(text, arrived, errors.NO_STATUS["interrupted"].sentence)
            raise
        except BaseException:  # on_text raised: the reply is unfinished all the same
            self.partial = Partial(text, arrived, "The reply stopped before the model finished.")
            raise
        if result.error is not None:  # cut: the stream failed or ended before the model finished
            self.partial = Partial(text, result.text, result.error.sentence)
            raise result.error from result.error.original
        if result.note is not None:  # only tool calls: a turn of text cannot hold them
            raise self._only_tool_calls(result.tool_calls)
        # The SDK has no finished ChatCompletion for a stream; build the same shape from what arrived.
        return ChatCompletion.construct(
            id="",
            created=int(time.time()),
            model=result.model or self.model,
            object="chat.completion",
            usage=result.usage,
            choices=[
                {
                    "index": 0,
                    "finish_reason": result.finish_reason,
                    "message": {"role": "assistant", "content": result.text},
                }
            ],
        )

    def _only_tool_calls(self, calls: tuple[str, ...]) -> AkashNBError:
        where = connection_or_unknown(self.client)
        return errors.shape_error("tool-calls-only", where, answers.calls_text(calls))

    def _explain(self, error: BaseException) -> AkashNBError:
        return connection_or_unknown(self.client).explain(error)

    # --- saving and loading --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the conversation as JSON, atomically and readable only by you (mode 0600).

        Written: model, system, params, budget_tokens, messages, and when it was saved. Never a key, never
        `.pending` or `.partial`. A crash or kill mid-save leaves the previous file intact.
        """
        if not isinstance(path, str | os.PathLike) or not str(path).strip() or "\0" in str(path):
            raise parameters.wrong_type(
                "path", path, expected="a file name", example="conversation.save('chat.json')"
            )
        path = Path(path)
        data = {
            "model": self.model,
            "system": self.system,
            "params": self.params,
            "budget_tokens": self.budget_tokens,
            "messages": self.messages,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            text = json.dumps(data, ensure_ascii=False, indent=1)
        except (TypeError, ValueError) as error:
            raise ConversationError(
                SENTENCES["cannot-save"].format(path=exceptions.shown_path(path), why=error)
            ) from error
        for key in (self.client.api_key, self.client.admin_api_key):
            if key and key != NO_KEY and key in text:
                raise ConversationError(SENTENCES["key-in-file"].format(path=path))
        try:
            write_atomically(path, text, mode=0o600, durable=True)
        except OSError as error:
            raise ConversationError(
                SENTENCES["cannot-save"].format(path=exceptions.shown_path(path), why=error.strerror or error)
            ) from error
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], client: openai.OpenAI) -> Conversation:
        """The conversation saved at `path`, talking through `client`."""
        if not isinstance(path, str | os.PathLike):
            raise parameters.wrong_type(
                "path", path, expected="a file name", example="Conversation.load('chat.json', client)"
            )
        path = Path(path)
        try:
            data = json.loads(read_text(path))  # a FIFO or a device refused before it is opened
        except FileNotFoundError:
            raise ConversationError(SENTENCES["missing"].format(path=exceptions.shown_path(path))) from None
        except (OSError, ValueError) as error:  # a folder, no permission, not UTF-8, not JSON
            why = (
                error.strerror
                if isinstance(error, OSError) and error.strerror
                else ("it is not UTF-8 text" if isinstance(error, UnicodeDecodeError) else str(error))
            )
            raise ConversationError(
                SENTENCES["not-a-conversation"].format(path=exceptions.shown_path(path), why=why)
            ) from error
        try:
            model, system, params, budget, messages = _fields_from(data)
            conversation = cls(client, model, system=system, budget_tokens=budget, **params)
            conversation._turns = _turns_from(messages, system)
        except (AkashNBError, ValueError) as error:
            why = error.sentence if isinstance(error, AkashNBError) else str(error)
            raise ConversationError(
                SENTENCES["not-a-conversation"].format(path=exceptions.shown_path(path), why=why.rstrip("."))
            ) from error
        return conversation

    # --- display -------------------------------------------------------------------------------------

    def _lines(self) -> list[tuple[str, str]]:
        """(label, content) for each message shown, including a pending message and a cut reply."""
        lines = [(m["role"], m["content"]) for m in self.messages]
        if self.pending is not None:
            lines.append(("user (not answered yet)", self.pending))
        if self.partial is not None:
            lines.append((f"assistant ({self.partial.label})", self.partial.text))
        return lines

    def transcript(self) -> str:
        """The conversation as plain text, one "role: content" line a message."""
        return "\n".join(f"{label}: {content}" for label, content in self._lines()) or "(no messages yet)"

    def markdown(self) -> str:
        """The conversation as Markdown: roles in bold, contents quoted."""
        return (
            "\n\n".join(f"**{label}:**\n\n{_quote(content)}" for label, content in self._lines())
            or "*(no messages yet)*"
        )

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return render.bundle("transcript", self.transcript(), self.markdown())

    def show(self) -> None:
        """Display the transcript in the notebook."""
        render.show("transcript", self.transcript(), self.markdown())

    def __repr__(self) -> str:
        return f"Conversation(model={self.model!r}, turns={len(self._turns)})"


def _check_params(params: dict[str, Any]) -> None:
    for name in _SET_BY_CONVERSATION:
        if name in params:
            raise ConversationError(SENTENCES["set-by-conversation"].format(name=name))


def _fields_from(data: object) -> tuple[str, str | None, dict[str, Any], int | None, list[dict[str, Any]]]:
    """(model, system, params, budget_tokens, messages) of a saved conversation, each of the right type;
    a ValueError saying which field is wrong otherwise (never Python's own words about __init__)."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds a JSON {type(data).__name__}, not an object with model and messages")
    for name in ("model", "system", "params", "messages"):
        if name not in data:
            raise ValueError(f"its field {name!r} is missing")
    model, system, params, messages = data["model"], data["system"], data["params"], data["messages"]
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"its 'model' is {_json_kind(model)}, not a model id")
    if system is not None and not isinstance(system, str):
        raise ValueError(f"its 'system' is {_json_kind(system)}, not text or null")
    if not isinstance(params, dict):
        raise ValueError(f"its 'params' is {_json_kind(params)}, not an object")
    for name in params:
        if name in _SET_BY_CONVERSATION or not name.isidentifier():
            raise ValueError(f"its 'params' holds {name!r}, which is not a create() parameter it can pass")
    budget = data.get("budget_tokens")
    if budget is not None and not (type(budget) is int and budget > 0):
        raise ValueError(f"its 'budget_tokens' is {_json_kind(budget)}, not a positive whole number")
    if not isinstance(messages, list):
        raise ValueError(f"its 'messages' is {_json_kind(messages)}, not a list")
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValueError(f"its message {number} is {_json_kind(message)}, not a {{role, content}} object")
        if not isinstance(message.get("content"), str):
            raise ValueError(
                f"its message {number} ({message['role']}) has content "
                f"{_json_kind(message.get('content'))}, not text"
            )
    return model, system, params, budget, messages


def _json_kind(value: object) -> str:
    """How a JSON value reads in a sentence: null, a number (5), a list, ..."""
    if value is None:
        return "null"
    kinds = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "an object",
    }
    kind = kinds.get(type(value), type(value).__name__)
    shown = json.dumps(value)[:30] if isinstance(value, bool | int | float | str) else ""
    return f"{kind} ({shown})" if shown else kind


def _turns_from(messages: list[dict[str, Any]], system: str | None) -> list[Turn]:
    """The turns in a saved `messages` list: an optional system message, then user/assistant pairs."""
    if messages and messages[0]["role"] == "system":
        if messages[0]["content"] != system:
            raise ValueError("its system message differs from its 'system'")
        messages = messages[1:]
    if len(messages) % 2:
        raise ValueError("its messages are not whole user/assistant pairs")
    turns = []
    for user, assistant in zip(messages[::2], messages[1::2], strict=True):
        if (user["role"], assistant["role"]) != ("user", "assistant"):
            raise ValueError(
                f"expected a user then an assistant message, found {user['role']} then {assistant['role']}"
            )
        turns.append(Turn(user["content"], assistant["content"]))
    return turns


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines()) or ">"
