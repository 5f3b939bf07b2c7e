"""Reading a streamed answer without losing what arrived before a failure.

stream = client.chat.completions.create(model=..., messages=[...], stream=True)
result = akash_nb._streaming.collect_stream(stream)
print(result.text)            # everything that arrived, even if the stream was cut
if result.cut:
    print(result.error.sentence)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx2
import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import Choice, ChoiceDelta

from ._core import answers, compat, exceptions, untrusted
from ._core import failures as errors
from ._core.parameters import wrong_type

if TYPE_CHECKING:  # for the annotation only
    from ._core.connection import Connection


@dataclass(frozen=True)
class StreamResult:
    text: str  # every piece of text that arrived, in order (partial when cut)
    finish_reason: str | None  # why the model stopped; None when the stream never said
    cut: bool  # the answer is incomplete: the stream failed or ended without a finish_reason
    error: exceptions.AkashNBError | None  # the one sentence, when cut
    chunks: int  # chunks received
    usage: CompletionUsage | None = None  # when the server reported it (stream_options include_usage)
    model: str | None = None  # the model the chunks name
    tool_calls: tuple[str, ...] = ()  # the calls the model asked for, as name(arguments) (answers.call_text)

    @property
    def note(self) -> str | None:
        """What to show instead of the text when the answer is only tool calls."""
        return answers.note(self.text, self.tool_calls)


def collect_stream(
    stream: openai.Stream[ChatCompletionChunk],
    where: Connection | str | None = None,
    *,
    on_text: Callable[[str], None] | None = None,
) -> StreamResult:
    """Read `stream` to the end; never raises for a failure after the request was accepted.

    `where`: the connection the stream came from, named in the error sentence (see `errors.explain`).
    `on_text(text_so_far)` is called after each piece of text (for a live display)."""
    if not isinstance(stream, openai.Stream):
        raise wrong_type(
            "stream",
            stream,
            expected="the stream create(..., stream=True) returns",
            got=type(stream).__name__,
            example="collect_stream(client.chat.completions.create(..., stream=True))",
        )
    parts: list[str] = []
    finish_reason = usage = model = None
    chunks = 0
    chose = False  # a chunk with a choice arrived (Azure's first chunk and the usage chunk have none)
    calls = answers.ToolCallPieces()
    error: exceptions.AkashNBError | None = None
    refused = _watch_error_field(stream)
    try:
        with stream:
            errors.check_content_type(stream.response)
            for chunk in stream:
                chunks += 1
                # The SDK builds chunks without checking them: any JSON arrives here (null, a number,
                # choices that are a string). What is not a chunk's shape ends the answer, text kept.
                choices = getattr(chunk, "choices", None)
                if not isinstance(chunk, ChatCompletionChunk) or not isinstance(choices, list):
                    error = errors.shape_error("bad-chunk", where)
                    break
                model = chunk.model if isinstance(chunk.model, str) and chunk.model else model
                usage = chunk.usage if isinstance(chunk.usage, CompletionUsage) else usage
                if not choices:  # the usage-only last chunk, Azure's prompt-filter first chunk
                    continue
                choice, chose = choices[0], True
                if not isinstance(choice, Choice):
                    error = errors.shape_error("bad-chunk", where)
                    break
                if isinstance(choice.finish_reason, str) and choice.finish_reason:
                    finish_reason = choice.finish_reason
                if not isinstance(choice.delta, ChoiceDelta):  # Azure's content-filter chunk: no delta
                    continue
                calls.add(choice.delta.tool_calls)
                if choice.delta.content and isinstance(choice.delta.content, str):
                    parts.append(choice.delta.content)
                    if on_text is not None:
                        on_text(untrusted.answer("".join(parts)))
    # JSONDecodeError, not ValueError: an event that is not JSON, never an on_text display's own error.
    except (openai.OpenAIError, json.JSONDecodeError) as exc:
        error = errors.explain(exc, where, streaming=True)
    if error is None and finish_reason is None and refused:
        error = _refused(refused[0], stream.response.request, where)
    if error is None and finish_reason is None:
        # chunks with none of a choice: an answer with no choices; no chunk at all: a stream that ended
        error = errors.shape_error("no-choices", where) if chunks and not chose else errors.ended_early(where)
    return StreamResult(
        text=untrusted.answer("".join(parts)),  # keys masked, control characters made visible
        finish_reason=finish_reason,
        cut=error is not None,
        error=error,
        chunks=chunks,
        usage=usage,
        model=model,
        tool_calls=calls.calls(),
    )


def _watch_error_field(stream: openai.Stream[ChatCompletionChunk]) -> list[str]:
    """The values of `error:` lines in the stream, which SSE parsers (the SDK's too) skip as an unknown
    field. llama.cpp's server reports a request it refuses after the stream began this way, e.g. a prompt
    over the context: `error: {"code": 400, "type": "exceed_context_size_error", ...}`."""
    found: list[str] = []

    def watching(line: str) -> None:
        name, _, value = line.partition(":")
        if name == "error":
            found.append(value.strip())

    compat.watch_sse_lines(stream, watching)
    return found


def _refused(value: str, request: httpx2.Request, where: Connection | str | None) -> exceptions.AkashNBError:
    """The sentence for an `error:` field: the server's message, as for an error event in the stream."""
    try:
        body = json.loads(value)
    except ValueError:
        body = {"message": value}
    if not isinstance(body, dict):
        body = {"message": str(body)}
    error = openai.APIError(str(body.get("message") or value), request, body=body)
    return errors.explain(error, where, streaming=True)
