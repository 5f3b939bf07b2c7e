"""What an answer holds, whatever shape the server sent it in: its text, the tool calls it asks for, or the
sentence for an answer with neither (no choices; a choice with no message, as Azure's content filter sends).

    answer = akash_nb._core.answers.read(response, conn)
    answer.problem        # None, or the AkashNBError for an answer with no choice or no message
    answer.shown          # the text, or a note naming the tool calls when there is no text
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from . import exceptions, masking, untrusted
from . import failures as errors

if TYPE_CHECKING:  # for the annotation only
    from .connection import Connection

CALLS_SHOWN = 3  # a note names this many tool calls, then "and N more"
ARGUMENTS_SHOWN = 80  # characters of a call's arguments a note quotes
NOTE = "(no text: the model asked for tool calls: {calls})"


def call_text(name: str | None, arguments: str | None) -> str:
    """One tool call as a note shows it, e.g. get_weather({"city": "Paris"}), its arguments bounded."""
    arguments = arguments or ""
    if len(arguments) > ARGUMENTS_SHOWN:
        arguments = arguments[:ARGUMENTS_SHOWN] + "…"
    return masking.mask_all(f"{name or 'unnamed'}({arguments})")


def calls_text(calls: tuple[str, ...]) -> str:
    """The calls as a note lists them: a few, then "and N more"."""
    shown = ", ".join(calls[:CALLS_SHOWN])
    more = len(calls) - CALLS_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def note(text: str, calls: tuple[str, ...]) -> str | None:
    """What to show instead of `text` when it is empty and the answer is only tool calls."""
    if text or not calls:
        return None
    return NOTE.format(calls=calls_text(calls))


@dataclass(frozen=True)
class Answer:
    """The first choice of an answer, read whatever its shape."""

    text: str  # the message's content ("" for content: null)
    finish_reason: str | None  # None when there is no choice
    tool_calls: tuple[str, ...] = ()  # each call as name(arguments), see call_text
    problem: exceptions.AkashNBError | None = None  # an answer with no choice, or a choice with no message

    @property
    def note(self) -> str | None:
        """What to show instead of the text when the answer is only tool calls."""
        return note(self.text, self.tool_calls)

    @property
    def shown(self) -> str:
        """The text, or the note when there is none."""
        return self.text or self.note or ""


def read(response: ChatCompletion, where: Connection | str | None = None) -> Answer:
    """The answer in `response` (a non-streamed chat completion). `where` names the provider in a problem's
    sentence. The SDK builds a response without checking it, so a missing choice or message is None here."""
    if not response.choices:
        return Answer("", None, problem=errors.shape_error("no-choices", where))
    choice = response.choices[0]
    message = choice.message
    if message is None:
        detail = str(choice.finish_reason)
        return Answer("", choice.finish_reason, problem=errors.shape_error("no-message", where, detail))
    calls = tuple(
        call_text(call.function.name, call.function.arguments)
        for call in message.tool_calls or ()
        if isinstance(call, ChatCompletionMessageFunctionToolCall)  # a custom tool call has no function
    )
    text = untrusted.answer(message.content) if isinstance(message.content, str) else ""
    return Answer(text, choice.finish_reason, calls)


class ToolCallPieces:
    """A stream's tool calls as their pieces arrive: each delta's calls, by index, the arguments joined."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str | None, str]] = {}

    def add(self, pieces: list[ChoiceDeltaToolCall] | None) -> None:
        # The SDK builds chunks without checking them: what is not a tool call's shape is left out.
        for piece in pieces if isinstance(pieces, list) else ():
            if not isinstance(piece, ChoiceDeltaToolCall):
                continue
            index = piece.index if isinstance(piece.index, int) else 0  # a server may leave it out
            name, arguments = self._calls.get(index, (None, ""))
            function = getattr(piece, "function", None)
            if function is not None:
                name = function.name if isinstance(function.name, str) and function.name else name
                arguments += function.arguments if isinstance(function.arguments, str) else ""
            self._calls[index] = (name, arguments)

    def calls(self) -> tuple[str, ...]:
        return tuple(call_text(name, arguments) for _, (name, arguments) in sorted(self._calls.items()))
