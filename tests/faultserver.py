"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, one behaviour at a time.

    with FaultServer() as server:
        server.behave("status", status=402)
        client = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0, timeout=2)
        ...
        assert server.hits == 1

It speaks just enough of the OpenAI chat API (`/v1/models`, `/v1/chat/completions`, streaming or not) for
the SDK to parse its good answers, and each behaviour in `BEHAVIOURS` breaks one thing. It counts every
request, so a test can tell whether the SDK retried. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from akash_nb._core.connection import Connection
from akash_nb._core.providers import PROVIDERS

MODEL = "fault-model"
HANG_LIMIT = 10.0  # a "hang" never outlives this, even if the client never gives up
WORDS = ("Once", " upon", " a", " time", ",", " in", " a", " land", " far", " away")


# Bodies real providers send. The old Akash endpoint was a LiteLLM proxy; its 401 looked like this
# (LiteLLM also echoes a masked form of the key it received).
def litellm_401(shown_key: str) -> dict:
    """LiteLLM's 401 body; `shown_key` is how it echoes the key it received (it printed sk-...last4)."""
    return {
        "error": {
            "message": "Authentication Error, Invalid proxy server token passed. Received API Key = "
            f"{shown_key}, Key Hash (Token) =e3b0c44298fc1c149afbf4c8996fb924. Unable to find "
            "token in cache or `LiteLLM_VerificationTokenTable`",
            "type": "auth_error",
            "param": "None",
            "code": "401",
        }
    }


BODIES: dict[int, dict] = {
    400: {"error": {"message": "temperature must be between 0 and 2", "type": "invalid_request_error"}},
    402: {"error": {"message": "Insufficient credits: add credits to continue.", "type": "payment_required"}},
    404: {
        "error": {
            "message": "The model `no-such-model` does not exist.",
            "type": "invalid_request_error",
            "code": "model_not_found",
        }
    },
    410: {"error": {"message": "This model was retired; use a current model.", "type": "gone"}},
    413: {"error": {"message": "Request body too large.", "type": "invalid_request_error"}},
    429: {"error": {"message": "Rate limit reached for requests.", "type": "rate_limit_error"}},
    500: {"error": {"message": "Internal server error.", "type": "server_error"}},
    502: {"error": {"message": "Bad gateway.", "type": "server_error"}},
    503: {"error": {"message": "Service unavailable.", "type": "server_error"}},
    504: {"error": {"message": "No backend available in time.", "type": "server_error"}},
    529: {"error": {"message": "Overloaded.", "type": "overloaded_error"}},
}


@dataclass
class Behaviour:
    name: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict | None = None
    chunks: int = 3  # "cut": SSE chunks sent before the connection drops
    fail_first: int = 0  # "flaky": this many failures (with `status`) before answering normally
    echo_key: bool = False  # 401: echo the whole key back (worse than LiteLLM, which masked all but 4)
    delay: float = 0.0  # "slow": seconds between streamed words
    finish: bool = True  # "no-done": send a finish_reason before the stream ends (without [DONE])


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler that reads a POST's JSON body and hands it to `answer(payload)`: the payload
    is None for a GET, {} for a body that is not a JSON object. faultserver's and drawn_server's share it."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # quiet: pytest shows failures, not traffic
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the client's delayed
        # ACK hold the body back ~40 ms a response, which is most of a property test's time.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.answer(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = {}
        self.answer(payload if isinstance(payload, dict) else {})

    def answer(self, payload: dict | None) -> None:
        raise NotImplementedError


class Handler(JsonHandler):
    server: _Server

    def answer(self, payload: dict | None) -> None:
        self._handle(payload)

    def _handle(self, payload: dict | None) -> None:
        fault = self.server.fault
        with fault.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            fault.requests.append((self.command, self.path, headers, payload))
            number = len(fault.requests)
        behaviour = fault.behaviour
        BEHAVIOURS[behaviour.name](self, behaviour, payload or {}, number)

    # --- building blocks -------------------------------------------------------------------------------

    def send_json(
        self,
        status: int,
        body: object,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop(self) -> None:
        """Close the socket now, mid-message, the way a crashed proxy does."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


def completion(text: str, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": len(WORDS), "total_tokens": 5 + len(WORDS)},
    }


def sse_chunk(delta: dict, finish_reason: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _answer(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """A correct answer: the model list, a completion, or a complete stream ending in [DONE]."""
    if h.command == "GET":
        h.send_json(
            200,
            {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "fault"}]},
        )
    elif payload.get("stream"):
        h.start_chunked()
        h.chunk(sse_chunk({"role": "assistant", "content": ""}))
        for word in WORDS:
            h.chunk(sse_chunk({"content": word}))
        h.chunk(sse_chunk({}, "stop"))
        h.chunk(b"data: [DONE]\n\n")
        h.end_chunks()
    else:
        h.send_json(200, completion("".join(WORDS)))


def _status(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    body = b.body if b.body is not None else BODIES.get(b.status, {"error": {"message": f"HTTP {b.status}"}})
    if b.status == 401 and b.body is None:
        key = h.headers.get("Authorization", "").removeprefix("Bearer ")
        body = litellm_401(key if b.echo_key else f"sk-...{key[-4:]}")
    h.send_json(b.status, body, b.headers)


def _echo(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """An error (status `status`) that repeats the key received in every place it can: the message, every
    other field of the body, and a header (as a misconfigured LiteLLM or a debugging proxy does)."""
    key = h.headers.get("Authorization", "").removeprefix("Bearer ")
    body = {
        "error": {
            "message": f"Invalid key {key} (received {key}, ...{key[-4:]})",
            "type": key,
            "param": key,
            "code": key,
            "detail": key,
        }
    }
    h.send_json(b.status, body, {"x-received-key": key, "www-authenticate": f"Bearer {key}"})


def _slow(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """A correct stream, one word every `delay` seconds (for interrupting it half-way)."""
    if h.command == "GET" or not payload.get("stream"):
        _answer(h, b, payload, number)
        return
    h.start_chunked()
    h.chunk(sse_chunk({"role": "assistant", "content": ""}))
    try:
        for word in WORDS:
            h.chunk(sse_chunk({"content": word}))
            with h.server.fault.lock:
                h.server.fault.words_sent += 1
            if h.server.fault.closing.wait(b.delay):
                return
        h.chunk(sse_chunk({}, "stop"))
        h.chunk(b"data: [DONE]\n\n")
        h.end_chunks()
    except OSError:
        pass  # the client hung up: that is what an interrupt does


def _error_field(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """llama.cpp's server refusing a streamed request after the 200: an `error:` SSE field (which SSE
    parsers skip), then the end of the stream, as it does for a prompt over the context."""
    h.start_chunked()
    error = {
        "code": 400,
        "message": "the request exceeds the available context size, try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 20007,
        "n_ctx": 4096,
    }
    h.chunk(b"error: " + json.dumps(error).encode() + b"\n\n")
    h.end_chunks()


def _typed_500(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """llama.cpp's answer to max_tokens='ten': 500, "[json.exception.type_error.302] ..."."""
    message = "[json.exception.type_error.302] type must be number, but is string"
    h.send_json(500, {"error": {"code": 500, "type": "server_error", "message": message}})


def _flaky(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    (_status if number <= b.fail_first else _answer)(h, b, payload, number)


def _hang(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """Read the request, then say nothing until the client gives up (or the server closes)."""
    h.server.fault.closing.wait(HANG_LIMIT)
    h.close_connection = True


def _cut(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """Start a stream, send `chunks` words, then drop the connection without the closing chunk."""
    h.start_chunked()
    h.chunk(sse_chunk({"role": "assistant", "content": ""}))
    for word in WORDS[: b.chunks]:
        h.chunk(sse_chunk({"content": word}))
    time.sleep(0.05)  # let the client read them before the drop
    h.drop()


def _early_end(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """A stream that ends cleanly at the HTTP level but before any finish_reason or [DONE]."""
    h.start_chunked()
    h.chunk(sse_chunk({"role": "assistant", "content": ""}))
    for word in WORDS[: b.chunks]:
        h.chunk(sse_chunk({"content": word}))
    h.end_chunks()


def _stream_error(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """Some words, then an error event inside the stream (how vLLM and LiteLLM report a failure mid-way)."""
    h.start_chunked()
    for word in WORDS[: b.chunks]:
        h.chunk(sse_chunk({"content": word}))
    error = {
        "error": {
            "message": "The model backend crashed while generating.",
            "type": "server_error",
            "code": 500,
        }
    }
    h.chunk(b"data: " + json.dumps(error).encode() + b"\n\n")
    h.end_chunks()


def _bad_json(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    h.send_json(200, b'{"id": "chatcmpl-fault", "choices": [{"message": ')


def _bad_sse(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    h.start_chunked()
    for word in WORDS[: b.chunks]:
        h.chunk(sse_chunk({"content": word}))
    h.chunk(b'data: {"choices": [{"delta": {"content": "x"\n\n')
    h.chunk(b"data: [DONE]\n\n")
    h.end_chunks()


def _html(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
    """A login page or proxy error page where the API should be: 200, text/html."""
    page = b"<!doctype html><html><head><title>Sign in</title></head><body>Please sign in.</body></html>"
    h.send_json(200, page, content_type="text/html; charset=utf-8")


# --- response shapes real servers send (issue 23 rule 3): each behaviour answers streamed and not --------

PROMPT_FILTER = [
    {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}
]
CONTENT_FILTER = {
    "hate": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": True, "severity": "high"},
}
USAGE = {"prompt_tokens": 5, "completion_tokens": len(WORDS), "total_tokens": 5 + len(WORDS)}
TOOL_CALL = {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def _chunk_body(choices: list, **extra: object) -> bytes:
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": choices,
        **extra,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _completion_body(choices: list, **extra: object) -> dict:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": choices,
        "usage": USAGE,
        **extra,
    }


def _shape(stream: Callable[[Handler, Behaviour], None], answer: Callable[[], dict]) -> Callable:
    """A behaviour that streams with `stream` and answers a plain request with `answer()`."""

    def behaviour(h: Handler, b: Behaviour, payload: dict, number: int) -> None:
        if h.command == "GET":
            _answer(h, b, payload, number)
        elif payload.get("stream"):
            h.start_chunked()
            stream(h, b)
            h.end_chunks()
        else:
            h.send_json(200, answer())

    return behaviour


def _empty_choices_stream(h: Handler, b: Behaviour) -> None:
    """Azure's first chunk (no choices, the prompt's filter results), then nothing but a usage chunk."""
    h.chunk(_chunk_body([], prompt_filter_results=PROMPT_FILTER))
    h.chunk(_chunk_body([], usage=USAGE))
    h.chunk(b"data: [DONE]\n\n")


def _empty_choices_answer() -> dict:
    """No choices and no usage: only the prompt's filter results."""
    return {**_completion_body([], prompt_filter_results=PROMPT_FILTER), "usage": None}


def _filter_chunk_stream(h: Handler, b: Behaviour) -> None:
    """Azure's stream: a first chunk with no choices, then words, with a content-filter chunk (a choice
    with no delta) among them, then the finish and [DONE]."""
    h.chunk(_chunk_body([], prompt_filter_results=PROMPT_FILTER))
    h.chunk(sse_chunk({"role": "assistant", "content": ""}))
    for number, word in enumerate(WORDS):
        if number == 3:
            h.chunk(_chunk_body([{"index": 0, "finish_reason": None, "content_filter_results": {}}]))
        h.chunk(sse_chunk({"content": word}))
    h.chunk(sse_chunk({}, "stop"))
    h.chunk(b"data: [DONE]\n\n")


def _filtered_answer() -> dict:
    """Azure's answer held back by its content filter: a choice with no message."""
    choice = {"index": 0, "finish_reason": "content_filter", "content_filter_results": CONTENT_FILTER}
    return _completion_body([choice], prompt_filter_results=PROMPT_FILTER)


def _tool_calls_stream(h: Handler, b: Behaviour) -> None:
    """content: null, then one tool call whose arguments arrive in two pieces, finish_reason tool_calls."""
    call = {"index": 0, "id": "call_fault", "type": "function", "function": {"name": TOOL_CALL["name"]}}
    h.chunk(
        sse_chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{**call, "function": {"name": TOOL_CALL["name"], "arguments": ""}}],
            }
        )
    )
    h.chunk(
        sse_chunk({"content": None, "tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]})
    )
    h.chunk(sse_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}))
    h.chunk(sse_chunk({}, "tool_calls"))
    h.chunk(b"data: [DONE]\n\n")


def _tool_calls_answer() -> dict:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_fault", "type": "function", "function": TOOL_CALL}],
    }
    return _completion_body([{"index": 0, "message": message, "finish_reason": "tool_calls"}])


def _usage_only_stream(h: Handler, b: Behaviour) -> None:
    """A complete answer, then the usage-only last chunk (stream_options include_usage): no choices."""
    h.chunk(sse_chunk({"role": "assistant", "content": ""}))
    for word in WORDS:
        h.chunk(sse_chunk({"content": word}))
    h.chunk(sse_chunk({}, "stop"))
    h.chunk(_chunk_body([], usage=USAGE))
    h.chunk(b"data: [DONE]\n\n")


def _usage_only_answer() -> dict:
    """The plain answer's counterpart: usage, and no choices at all."""
    return _completion_body([])


def _no_done_stream(h: Handler, b: Behaviour) -> None:
    """Every word, then (if `finish`) the finish_reason, then the end of the body: no [DONE]."""
    h.chunk(sse_chunk({"role": "assistant", "content": ""}))
    for word in WORDS:
        h.chunk(sse_chunk({"content": word}))
    if b.finish:
        h.chunk(sse_chunk({}, "stop"))


def _unknown_fields_stream(h: Handler, b: Behaviour) -> None:
    """A correct stream with fields no schema names at every level (vLLM's stop_reason, DeepSeek's
    reasoning_content, Groq's x_groq, ...)."""
    extra = {"x_vendor": {"trace": [1, 2]}, "service_tier": "weird"}
    choice_extra = {"stop_reason": None, "logprobs": None, "matched_stop": 7}

    def one(delta: dict, finish: str | None = None) -> bytes:
        choice = {
            "index": 0,
            "delta": {**delta, "reasoning_content": "hm", "x_delta": 1},
            "finish_reason": finish,
        }
        return _chunk_body([{**choice, **choice_extra}], **extra)

    h.chunk(one({"role": "assistant", "content": ""}))
    for word in WORDS:
        h.chunk(one({"content": word}))
    h.chunk(one({}, "stop"))
    h.chunk(_chunk_body([], usage={**USAGE, "x_usage": {"a": 1}}, x_groq={"id": "req_1"}))
    h.chunk(b"data: [DONE]\n\n")


def _unknown_fields_answer() -> dict:
    message = {"role": "assistant", "content": "".join(WORDS), "reasoning_content": "hm", "x_message": [1]}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "stop_reason": None, "x_choice": {}}
    return {
        **_completion_body([choice], x_vendor={"trace": [1, 2]}, service_tier="weird"),
        "usage": {**USAGE, "x_usage": {"a": 1}},
    }


BEHAVIOURS: dict[str, Callable[[Handler, Behaviour, dict, int], None]] = {
    "ok": _answer,
    "status": _status,
    "flaky": _flaky,
    "hang": _hang,
    "cut": _cut,
    "early-end": _early_end,
    "stream-error": _stream_error,
    "bad-json": _bad_json,
    "bad-sse": _bad_sse,
    "html": _html,
    "echo": _echo,
    "slow": _slow,
    "error-field": _error_field,
    "typed-500": _typed_500,
    # response shapes (see above): streamed and not
    "empty-choices": _shape(_empty_choices_stream, _empty_choices_answer),
    "filter-chunk": _shape(_filter_chunk_stream, _filtered_answer),
    "tool-calls": _shape(_tool_calls_stream, _tool_calls_answer),
    "usage-only": _shape(_usage_only_stream, _usage_only_answer),
    "no-done": _shape(_no_done_stream, lambda: completion("".join(WORDS))),
    "unknown-fields": _shape(_unknown_fields_stream, _unknown_fields_answer),
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fault: FaultServer

    def handle_error(self, request, client_address) -> None:
        # Clients hang up on a server that misbehaves on purpose (that is the test); only other errors are
        # worth a traceback in the test log.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultServer:
    """The server, its current behaviour, and every request it received."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.requests: list[tuple[str, str, dict[str, str], dict | None]] = []
        self.words_sent = 0  # "slow": streamed words so far (a test waits for some before interrupting)
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.fault = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def hits(self) -> int:
        """Requests received so far (a request the SDK retried twice counts three times)."""
        with self.lock:
            return len(self.requests)

    def behave(self, name: str, **options) -> FaultServer:
        if name not in BEHAVIOURS:
            raise ValueError(f"Unknown behaviour {name!r}: choose one of {', '.join(BEHAVIOURS)}.")
        self.behaviour = Behaviour(name, **options)
        with self.lock:
            self.requests.clear()
            self.words_sent = 0
        return self

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()  # release any hanging handler
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A host name that cannot resolve: `.invalid` is reserved (RFC 2606), so no resolver sends it anywhere real.
UNRESOLVABLE_URL = "http://chatapi.akash.invalid/api/v1"


def connection_to(url: str = "", provider: str = "openai-compatible", title: str | None = None) -> Connection:
    """A Connection to `url` as akash_nb would make it for `provider`, its title `title` if given: what
    errors.explain and streaming.collect_stream are told about where a request went."""
    found = PROVIDERS[provider]
    return Connection(dataclasses.replace(found, title=title) if title else found, url, None, "test")
