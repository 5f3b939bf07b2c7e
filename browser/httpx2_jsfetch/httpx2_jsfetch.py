"""httpx2's transport on Emscripten (Pyodide): each request goes through the browser's `fetch`.

httpx2 imports this module instead of its socket transport when `sys.platform == "emscripten"`.

- The sync transport blocks on fetch's promise, and on each read of the body, through JSPI
  (`pyodide.ffi.run_sync`), so a streamed answer arrives chunk by chunk. Where JSPI is missing (the call
  stack did not enter through `runPythonAsync`, or the browser lacks it) it falls back to a synchronous
  XMLHttpRequest, which gives the whole body at once.
- The async transport awaits fetch's promises.
- `answer(origin, sync_fn, async_fn)` registers an answerer inside the tab for one origin (a replay in
  Python, a model in a worker): requests to it never reach the network.

Headers the browser must not be sent (the SDK's `x-stainless-*`, which fail CORS pre-flight on many servers,
and those fetch sets itself) are dropped. A refused or unreachable server is an `httpx2.ConnectError` whose
message is one sentence naming the URL and what to do.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Importing `httpx2` itself here would be circular: httpx2 imports this module while it initialises.
from httpx2._exceptions import ConnectError, ReadError, ReadTimeout
from httpx2._models import Request, Response
from httpx2._transports.base import AsyncBaseTransport, BaseTransport
from httpx2._types import AsyncByteStream, SyncByteStream

if sys.platform == "emscripten":  # pragma: no cover - only Pyodide has these
    import js
    from pyodide.code import run_js
    from pyodide.ffi import JsException, can_run_sync, run_sync, to_js

__all__ = [
    "AsyncJavascriptFetchTransport",
    "Call",
    "JavascriptFetchTransport",
    "Reply",
    "Unreachable",
    "answer",
    "answerer_for",
]
__version__ = "0.1.0"

# Headers never passed to fetch: the SDK's own (CORS pre-flight refuses unknown ones on many servers) and
# those the browser sets or forbids (framing, compression, the user agent).
DROPPED_PREFIXES = ("x-stainless-",)
DROPPED = frozenset(
    {"host", "content-length", "connection", "accept-encoding", "user-agent", "transfer-encoding", "cookie"}
)
# The browser has already decoded the body and framed it: these would make httpx2 decode it again.
DROPPED_IN_RESPONSE = frozenset({"content-encoding", "content-length", "transfer-encoding"})
LOCAL_ROUTE = "run the lessons on your own machine instead (make lab)"


@dataclass(frozen=True)
class Call:
    """One request as an in-tab answerer sees it."""

    method: str
    url: str
    headers: dict[str, str]  # lower-case names, the dropped ones removed
    body: bytes
    timeout: float | None  # seconds to wait for each part of the answer; None: forever

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True)
class Reply:
    """An answer made in Python: status, headers and the body's chunks (bytes, sync or async)."""

    status: int
    headers: list[tuple[str, str]]
    chunks: Iterable[bytes] | AsyncIterable[bytes] = field(default_factory=list)


# An answerer returns a Reply, or a JavaScript Response (which is read exactly as fetch's is).
SyncAnswerer = Callable[[Call], Any]
AsyncAnswerer = Callable[[Call], Awaitable[Any]]
_answerers: dict[str, tuple[SyncAnswerer, AsyncAnswerer]] = {}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def answer(origin: str, sync_fn: SyncAnswerer, async_fn: AsyncAnswerer) -> None:
    """Answer every request to `origin` (e.g. "http://replay.localhost") in this tab: `sync_fn(call)` for
    the sync client, `await async_fn(call)` for the async one, each returning a Reply or a JS Response."""
    _answerers[_origin(origin)] = (sync_fn, async_fn)


def answerer_for(url: str) -> tuple[SyncAnswerer, AsyncAnswerer] | None:
    """The answerers registered for the origin of `url`, if any."""
    return _answerers.get(_origin(url))


# --- requests -------------------------------------------------------------------------------------------


def _timeout(request: Request) -> float | None:
    """The longest of the request's timeouts (httpx2's `timeout` extension), in seconds."""
    given = request.extensions.get("timeout") or {}
    values = [v for v in given.values() if isinstance(v, (int, float))]
    return float(max(values)) if values else None


def _call(request: Request, body: bytes) -> Call:
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        if name in DROPPED or name.startswith(DROPPED_PREFIXES):
            continue
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Call(request.method, str(request.url), headers, body, _timeout(request))


class Unreachable(ConnectError):
    """fetch failed before any answer: the server is down, or CORS refused this page."""


def _unreachable(call: Call, detail: str) -> ConnectError:
    page = str(js.location.origin)
    return Unreachable(
        f"The browser could not reach {call.url} ({detail}): the server is down, or it does not allow "
        f"requests from this page (CORS); ask its operator to allow the origin {page}, or {LOCAL_ROUTE}."
    )


def _timed_out(call: Call) -> ReadTimeout:
    return ReadTimeout(f"{call.url} did not answer within {call.timeout:g} seconds.")


# --- JavaScript helpers ---------------------------------------------------------------------------------

# Every promise is made and bounded here, in JavaScript: a promise handed from Python back to JavaScript
# arrives as a temporary proxy of a Python future, destroyed before it settles (a fatal error in Pyodide).
_JS_HELPERS = """
(() => {
  // `promise`, rejected with a TimeoutError after `ms` (aborting `controller`, when given); `ms` null: never.
  const timed = (promise, ms, controller) => {
    if (ms === null || ms === undefined) return promise;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (controller) controller.abort();
        reject(new DOMException("timed out", "TimeoutError"));
      }, ms);
      promise.then((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
    });
  };
  return {
    fetch(url, method, headers, body, ms) {
      const controller = new AbortController();
      const init = { method, headers: new Headers(headers), signal: controller.signal, redirect: "follow" };
      if (body !== null && body !== undefined) init.body = body;
      return { controller, response: timed(fetch(url, init), ms, controller) };
    },
    read(reader, ms, controller) { return timed(reader.read(), ms, controller); },
    headers(response) { return Array.from(response.headers.entries()); },
  };
})()
"""
_helpers: Any = None


def _js() -> Any:
    global _helpers
    if _helpers is None:
        _helpers = run_js(_JS_HELPERS)
    return _helpers


def _ms(call: Call) -> int | None:
    return None if call.timeout is None else max(1, round(call.timeout * 1000))


def _js_body(call: Call) -> Any:
    """The request's body as a Uint8Array for fetch or XMLHttpRequest, or None when it has none."""
    if not call.body:
        return None
    body = js.Uint8Array.new(len(call.body))
    body.assign(call.body)
    return body


def _start_fetch(call: Call) -> tuple[Any, Any]:
    """fetch's promise, already bounded by the timeout, and the AbortController that cancels it."""
    headers = to_js(call.headers, dict_converter=js.Object.fromEntries)
    started = _js().fetch(call.url, call.method, headers, _js_body(call), _ms(call))
    return started.response, started.controller


def _failure(error: BaseException, call: Call, phase: str) -> Exception:
    """httpx2's exception for a JS failure: TimeoutError is a timeout; anything else while connecting is
    an unreachable server; while reading, a broken answer."""
    name = str(getattr(error, "name", ""))
    if name in ("TimeoutError", "AbortError"):
        return _timed_out(call)
    if phase == "connect":
        return _unreachable(call, f"{name}: {getattr(error, 'message', error)}")
    return ReadError(f"The answer from {call.url} broke off ({name}: {getattr(error, 'message', error)}).")


def _response_headers(js_response: Any) -> list[tuple[str, str]]:
    return [
        (str(pair[0]), str(pair[1]))
        for pair in _js().headers(js_response)
        if str(pair[0]).lower() not in DROPPED_IN_RESPONSE
    ]


# --- the sync transport ---------------------------------------------------------------------------------


class _SyncReplyStream(SyncByteStream):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


class _FetchBody:
    """A fetch Response's body reader, the request it answers, and whether it is read to the end."""

    def __init__(self, js_response: Any, call: Call, controller: Any = None) -> None:
        self._reader = js_response.body.getReader() if js_response.body is not None else None
        self._call = call
        self._controller = controller
        self._done = self._reader is None

    def _read(self) -> Any:
        """The next `reader.read()` promise, bounded by the request's timeout."""
        return _js().read(self._reader, _ms(self._call), self._controller)

    def _cancel(self) -> None:
        if not self._done and self._reader is not None:
            self._done = True
            self._reader.cancel()  # the promise it returns needs no waiting for


class _SyncFetchStream(_FetchBody, SyncByteStream):
    """A fetch Response's body, one `reader.read()` (through JSPI) a chunk."""

    def __iter__(self) -> Iterator[bytes]:
        while not self._done:
            try:
                result = run_sync(self._read())
            except JsException as error:
                self._done = True
                raise _failure(error, self._call, "read") from None
            if result.done:
                self._done = True
                return
            yield result.value.to_bytes()

    def close(self) -> None:
        self._cancel()


class _BrowserOptions:
    """What httpx2 constructs a transport with. The browser does TLS, pooling and proxies itself: these are
    accepted for httpx2's sake only."""

    def __init__(
        self,
        verify: Any = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: Any = None,
        proxy: Any = None,
        **_: Any,
    ) -> None:
        self.proxy = proxy


class JavascriptFetchTransport(_BrowserOptions, BaseTransport):
    """httpx2's sync transport under Pyodide: `fetch` through JSPI, or a synchronous XMLHttpRequest."""

    def handle_request(self, request: Request) -> Response:
        call = _call(request, request.read())
        answerers = answerer_for(call.url)
        if answerers is not None:
            result = answerers[0](call)
            if isinstance(result, Reply):
                return Response(result.status, headers=result.headers, stream=_SyncReplyStream(result.chunks))
            return self._from_js(result, call)
        if not can_run_sync():
            return _xhr(call)
        promise, controller = _start_fetch(call)
        try:
            js_response = run_sync(promise)
        except JsException as error:
            raise _failure(error, call, "connect") from None
        return self._from_js(js_response, call, controller)

    @staticmethod
    def _from_js(js_response: Any, call: Call, controller: Any = None) -> Response:
        return Response(
            int(js_response.status),
            headers=_response_headers(js_response),
            stream=_SyncFetchStream(js_response, call, controller),
        )


def _xhr(call: Call) -> Response:
    """The request as a synchronous XMLHttpRequest: the whole body at once (no streaming)."""
    xhr = js.XMLHttpRequest.new()
    xhr.open(call.method, call.url, False)
    xhr.overrideMimeType("text/plain; charset=x-user-defined")  # bytes as U+F700+byte: no decoding
    for name, value in call.headers.items():
        xhr.setRequestHeader(name, value)
    if call.timeout is not None:
        try:
            xhr.timeout = _ms(call)
        except JsException:
            pass  # a page's main thread refuses a timeout on a synchronous request
    try:
        xhr.send(_js_body(call))
    except JsException as error:
        raise _failure(error, call, "connect") from None
    if int(xhr.status) == 0:
        raise _unreachable(call, "no answer")
    data = str(xhr.responseText).encode("utf-16-le")[::2]  # each char's low byte is the byte
    headers = []
    for line in str(xhr.getAllResponseHeaders()).split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() not in DROPPED_IN_RESPONSE:
            headers.append((name.strip(), value.strip()))
    return Response(int(xhr.status), headers=headers, stream=_SyncReplyStream([data]))


# --- the async transport --------------------------------------------------------------------------------


class _AsyncReplyStream(AsyncByteStream):
    def __init__(self, chunks: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if isinstance(self._chunks, AsyncIterable):
            async for chunk in self._chunks:
                yield chunk
        else:
            for chunk in self._chunks:
                yield chunk


class _AsyncFetchStream(_FetchBody, AsyncByteStream):
    """A fetch Response's body, one awaited `reader.read()` a chunk."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._done:
            try:
                result = await self._read()
            except JsException as error:
                self._done = True
                raise _failure(error, self._call, "read") from None
            if result.done:
                self._done = True
                return
            yield result.value.to_bytes()

    async def aclose(self) -> None:
        self._cancel()


class AsyncJavascriptFetchTransport(_BrowserOptions, AsyncBaseTransport):
    """httpx2's async transport under Pyodide: `fetch`, awaited."""

    async def handle_async_request(self, request: Request) -> Response:
        call = _call(request, await request.aread())
        answerers = answerer_for(call.url)
        if answerers is not None:
            result = await answerers[1](call)
            if isinstance(result, Reply):
                return Response(
                    result.status, headers=result.headers, stream=_AsyncReplyStream(result.chunks)
                )
            return self._from_js(result, call)
        promise, controller = _start_fetch(call)
        try:
            js_response = await promise
        except JsException as error:
            raise _failure(error, call, "connect") from None
        return self._from_js(js_response, call, controller)

    @staticmethod
    def _from_js(js_response: Any, call: Call, controller: Any = None) -> Response:
        return Response(
            int(js_response.status),
            headers=_response_headers(js_response),
            stream=_AsyncFetchStream(js_response, call, controller),
        )
