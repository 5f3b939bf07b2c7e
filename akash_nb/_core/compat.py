"""The one place akash_nb reaches into a library's private internals, so that an upgrade of the openai SDK,
httpx2 or IPython that changes one breaks here, and tests/test_compat.py says which.

Each function is one such use, with the versions it was checked on and what it relies on. The libraries
are imported inside the functions, so that importing this module loads none of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard

if TYPE_CHECKING:  # annotations only: never run
    import httpx2
    import openai
    from IPython.core.interactiveshell import InteractiveShell
    from openai._legacy_response import LegacyAPIResponse

# What `with_raw_response` calls return (see `is_raw_response`), for annotations.
RawResponse: TypeAlias = "LegacyAPIResponse[Any]"


def watch_sse_lines(stream: openai.Stream[Any], on_line: Callable[[str], None]) -> None:
    """Call `on_line` with every line of `stream`'s server-sent events, before the SDK decodes it, unknown
    fields (such as llama.cpp's `error:`) included, which the SDK's parser skips.

    Checked on openai 3.60. Relies on `Stream._decoder`, the stream's own `SSEDecoder`, whose `decode(line)`
    the SDK calls once per line through the instance (`self.decode`), so an instance attribute replaces it
    for this one stream (no public hook sees unknown fields)."""
    decoder: Any = stream._decoder
    decode = decoder.decode

    def watching(line: str) -> object:
        on_line(line)
        return decode(line)

    decoder.decode = watching


def stream_client(stream: object) -> object:
    """The client a streaming response was made by (None for anything else).

    Checked on openai 3.60. Relies on `Stream._client` (and `AsyncStream._client`): the SDK keeps the
    client that made a stream there, and has no public attribute for it."""
    import openai  # lazy: importing compat loads no SDK

    if isinstance(stream, openai.Stream | openai.AsyncStream):
        return stream._client
    return None


def is_raw_response(value: object) -> TypeGuard[RawResponse]:
    """Whether `value` is what `client.chat.completions.with_raw_response.create(...)` returns: the
    exchange, with `.http_request`, `.http_response` and `.parse()`.

    Checked on openai 3.60. Relies on `openai._legacy_response.LegacyAPIResponse`, the class of a
    `with_raw_response` result, which the SDK does not export (its `openai.APIResponse` is the class of a
    `with_streaming_response` result, a different one)."""
    from openai._legacy_response import LegacyAPIResponse  # lazy: importing compat loads no SDK

    return isinstance(value, LegacyAPIResponse)


def replace_body(response: httpx2.Response, content: bytes) -> None:
    """Make a read `response`'s body `content`: its `.content`, `.text` and `.json()` all give the new body
    from now on (what the SDK reads to build its exception from a failed answer).

    Checked on httpx2 2.16. Relies on httpx2 keeping a read body in `Response._content` and caching its
    decoded text in `Response._text` once `.text` was read (dropped here, so it is decoded again)."""
    response._content = content
    response.__dict__.pop("_text", None)


def show_traceback(
    shell: InteractiveShell, etype: type[BaseException], value: BaseException, stb: list[str]
) -> None:
    """Send `stb`, a structured traceback (a list of lines), to the front end as the error `value` of the
    cell, as IPython's own `showtraceback` does: in a kernel, the cell's `error` output (which nbval
    reports); in a terminal, printed.

    Checked on IPython 9.18 and ipykernel 7.4. Relies on `InteractiveShell._showtraceback(etype, evalue,
    stb)`, which `showtraceback` calls and ipykernel's `ZMQInteractiveShell` overrides to publish the
    error; a custom exception handler's return value is ignored, so this is how its traceback is shown."""
    shell._showtraceback(etype, value, stb)
