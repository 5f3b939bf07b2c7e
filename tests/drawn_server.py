"""A loopback HTTP server whose next reply Hypothesis draws, and the strategies that draw it.

    with DrawnServer() as server:
        server.replies["chat"] = reply          # a `Reply` drawn by `chat_replies(...)`
        client = akash_nb.client(base_url=server.url, api_key=KEY, timeout=0.3, max_retries=0, show=False)
        ...
        assert not server.second.authorized     # a redirect to the other origin carried no key

The reply is what a hostile but realistic server sends: any status (redirects too, one of them to a SECOND
loopback server on another port that records the headers it receives), odd headers (Retry-After good and
bad, a wrong content type, huge or control-character values), error bodies in the shapes real servers use,
bodies of a few MB, and SSE framing as it is found in the wild (comments, bad JSON, error events, no
[DONE], chunks with no choices or no delta, stalls). Every string may carry control characters, terminal
escape sequences, a newline that tries to forge a line of output (FORGED), and the configured key (`KEY`),
whole or as a proxy's "...last4". Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from faultserver import JsonHandler
from hypothesis import strategies as st

MODEL = "drawn-model"
KEY = "akml-" + "Qz7" * 8  # the configured key a server may echo (built, so no key-shaped literal)
TAIL = "..." + KEY[-4:]  # how a proxy echoes it (LiteLLM: sk-...last4)
FORGED = "FORGED-LINE"  # a drawn newline followed by this tries to forge a line of our own output
STALL_SECONDS = 1.0  # a stall outlasts the client's 0.3 s timeout


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, extra headers, content type and body; `stall_at` (a byte offset of the
    body) is where the server goes silent for STALL_SECONDS; `chunked` sends the body as a chunked stream
    (how SSE arrives); `location` is "second" (the other origin), "self" or a raw value, for a 3xx."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = "application/json"
    body: bytes = b""
    chunked: bool = False
    stall_at: int | None = None
    location: str | None = None

    def __repr__(self) -> str:  # a failing example's reproduction, without megabytes of body
        body = self.body if len(self.body) <= 600 else self.body[:300] + b"..." + self.body[-100:]
        return (
            f"Reply(status={self.status}, headers={self.headers!r}, content_type={self.content_type!r}, "
            f"body={body!r} ({len(self.body)} bytes), chunked={self.chunked}, stall_at={self.stall_at}, "
            f"location={self.location!r})"
        )


def models_body(ids: list[str]) -> bytes:
    return json.dumps(
        {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "x"} for i in ids]}
    ).encode()


def completion(content: str | None = "Hello there.", **extra: object) -> dict:
    return {
        "id": "chatcmpl-drawn",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        **extra,
    }


def chunk(choices: list[dict] | None, **extra: object) -> dict:
    body: dict = {"id": "chatcmpl-drawn", "object": "chat.completion.chunk", "created": 1700000000}
    body["model"] = MODEL
    if choices is not None:
        body["choices"] = choices
    body.update(extra)
    return body


GOOD_MODELS = Reply(body=models_body([MODEL]))
GOOD_CHAT = Reply(body=json.dumps(completion()).encode())
GOOD_STREAM = Reply(
    content_type="text/event-stream",
    chunked=True,
    body=(
        b"data: "
        + json.dumps(chunk([{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}])).encode()
        + b"\n\ndata: "
        + json.dumps(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])).encode()
        + b"\n\ndata: [DONE]\n\n"
    ),
)


class _Handler(JsonHandler):
    server: _Server

    def answer(self, payload: dict | None) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        if payload is None:
            reply = owner.replies.get("models", GOOD_MODELS)
        elif payload.get("stream"):
            reply = owner.replies.get("stream", GOOD_STREAM)
        else:
            reply = owner.replies.get("chat", GOOD_CHAT)
        if owner.redirected_once and reply.location == "self":  # a redirect to itself, answered once
            reply = GOOD_MODELS if payload is None else GOOD_STREAM if payload.get("stream") else GOOD_CHAT
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): as a server sees
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        owner = self.server.owner
        self.send_response(reply.status)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.location is not None:
            owner.redirected_once = True
            target = {"second": owner.second_url, "self": owner.url}.get(reply.location, reply.location)
            self.send_header("Location", target + self.path.removeprefix("/v1") if target else "")
        body, stall = reply.body, reply.stall_at
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        pieces = [body] if stall is None else [body[:stall], body[stall:]]
        for number, piece in enumerate(pieces):
            if number:  # the stall: connected, no byte, longer than the client waits
                self.wfile.flush()
                time.sleep(STALL_SECONDS)
            if reply.chunked and piece:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            elif piece:
                self.wfile.write(piece)
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled handler does not hold up the test's end
    owner: DrawnServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up mid-reply (its timeout) is part of what is drawn, not a server error


class DrawnServer:
    """The server on 127.0.0.1; `replies` maps "models", "chat" and "stream" to the next `Reply` for that
    request (a good answer when unset). `second` is the other origin a redirect may send a client to."""

    def __init__(self, *, second: DrawnServer | None = None) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.redirected_once = False
        self.second = second
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self.second_url = second.url if second is not None else ""
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def reset(self, **replies: Reply) -> None:
        with self.lock:
            self.replies = dict(replies)
            self.requests.clear()
            self.redirected_once = False
        if self.second is not None:
            self.second.reset()

    @property
    def authorized(self) -> list[str]:
        """The Authorization values this server received."""
        return [h["authorization"] for _, _, h in self.requests if "authorization" in h]

    def __enter__(self) -> DrawnServer:
        if self.second is not None:
            self.second.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self.second is not None:
            self.second.__exit__(*exc)


# --- strategies ---------------------------------------------------------------------------------------------

HOSTILE_PIECES = (
    KEY,
    TAIL,
    f"Received API Key = {KEY}",
    f"key {TAIL}, hash e3b0c442",
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b]0;pwned\x07",  # set the terminal's title
    "\x1b[31mred\x1b[0m",
    "\r",
    "\x00",
    "\x08\x08\x08",
    "\u202e",  # right-to-left override
    f"\n{FORGED}: ",
    "\n",
    "\t",
    "\x7f",
    "\x9b31m",  # a C1 control sequence introducer
    "é✓",
)

small_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
pieces = st.one_of(st.sampled_from(HOSTILE_PIECES), small_text)


def hostile(max_pieces: int = 6) -> st.SearchStrategy[str]:
    """A server's string: ordinary words, control characters, escape sequences, the key."""
    return st.lists(pieces, max_size=max_pieces).map("".join)


# A string of a size no sentence should quote whole: 2 KB to 3 MB, on one line.
huge = st.sampled_from([2_000, 60_000, 3_000_000]).flatmap(
    lambda n: hostile(3).map(lambda s, n=n: (s + "x" * n + s) if s else "y" * n)
)
server_text = st.one_of(hostile(), hostile(), hostile(), huge)
# A model's content: hostile but short (no line of a real answer is checked for length against this)
# An answer's newlines are its own lines (a model writes them): the forged-line check is for ids, messages
# and headers, so a content's "FORGED-LINE" is written as an ordinary next line.
content_text = hostile(4).map(lambda s: s[:150].replace(FORGED, "next line of the answer"))


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()


error_objects = st.one_of(
    st.builds(
        lambda m, t, c: {"error": {"message": m, "type": t, "code": c}},
        server_text,
        server_text,
        st.one_of(st.none(), st.integers(0, 999), server_text),
    ),
    st.builds(lambda m: {"error": {"message": m}}, server_text),
    st.builds(lambda m: {"error": m}, server_text),  # {"error": "text"}
    st.builds(lambda m: {"detail": m}, server_text),  # FastAPI
    st.builds(
        lambda m: {"detail": [{"loc": ["body", "model"], "msg": m, "type": "value_error"}]}, server_text
    ),
    st.builds(lambda m: {"message": m, "object": "error"}, server_text),
    st.builds(lambda m: [{"error": {"message": m}}], server_text),  # a list (Google's proxies)
    st.just(None),
    st.builds(lambda m: {"error": {"message": None, "type": m}}, server_text),
)
error_bodies = st.one_of(
    error_objects.map(_dumps),
    server_text.map(lambda s: s.encode()),  # not JSON: a proxy's page
    st.just(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    st.just(b""),
    st.just(b'{"error": {"message": "cut'),  # truncated JSON
)

retry_after = st.one_of(
    st.sampled_from(
        ["0", "1", "0.01", "-5", "99999999", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "", "1e309"]
    ),
    server_text,
)


def _header_value(text: str) -> str:
    """What an HTTP server can send in a header: no CR or LF (they end it), latin-1 only."""
    return "".join(c for c in text if c not in "\r\n").encode("latin-1", "replace").decode("latin-1")[:8000]


headers = st.lists(
    st.one_of(
        st.tuples(st.just("Retry-After"), retry_after.map(_header_value)),
        st.tuples(
            st.sampled_from(["X-Request-Id", "Server", "WWW-Authenticate", "X-Error"]),
            server_text.map(_header_value),
        ),
        st.tuples(st.just("Set-Cookie"), st.just("session=" + "a" * 4000)),
    ),
    max_size=3,
).map(tuple)

content_types = st.sampled_from(
    ["application/json", "text/html; charset=utf-8", "text/plain", "application/json; charset=latin-1", None]
)

ERROR_STATUSES = [
    400,
    401,
    402,
    403,
    404,
    408,
    409,
    410,
    413,
    418,
    422,
    429,
    451,
    499,
    500,
    502,
    503,
    504,
    520,
    529,
    599,
]


def error_replies(body_type: st.SearchStrategy[str | None] = content_types) -> st.SearchStrategy[Reply]:
    return st.builds(
        Reply,
        status=st.sampled_from(ERROR_STATUSES),
        headers=headers,
        content_type=body_type,
        body=error_bodies,
    )


redirects = st.builds(
    Reply,
    status=st.sampled_from([301, 302, 303, 307, 308]),
    location=st.sampled_from(["second", "second", "self", "", "ftp://127.0.0.1:1/x", "http://[::1"]),
    body=st.just(b""),
)


# --- success bodies, in the shapes real servers send ------------------------------------------------------

model_ids = st.one_of(st.just(MODEL), server_text)
models_replies = st.one_of(
    st.lists(model_ids, min_size=0, max_size=4).map(lambda ids: Reply(body=models_body(ids))),
    st.integers(30, 3000).map(lambda n: Reply(body=models_body([f"model-{i}" for i in range(n)]))),
    st.builds(lambda ids: Reply(body=models_body([MODEL, *ids])), st.lists(server_text, max_size=3)),
    st.sampled_from(
        [
            {"data": None},
            {"data": [{"id": None}, {"name": "x"}, 7]},
            {"object": "list"},
            [MODEL],
            {"data": {"id": MODEL}},
        ]
    ).map(lambda b: Reply(body=_dumps(b))),
)

messages = st.one_of(
    st.builds(lambda c: {"role": "assistant", "content": c}, content_text),
    st.just({"role": "assistant", "content": None}),
    st.just(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    ),
    st.builds(
        lambda c: {"role": "assistant", "content": c, "reasoning_content": c, "x_unknown": 1}, content_text
    ),
)
choices = st.one_of(
    st.builds(
        lambda m, f: [{"index": 0, "message": m, "finish_reason": f}],
        messages,
        st.sampled_from(["stop", "length", "tool_calls", "content_filter", None, "eos"]),
    ),
    st.just([]),  # empty choices
    st.just([{"index": 0, "finish_reason": "content_filter", "content_filter_results": {}}]),  # no message
    st.just(None),
)
completions = st.builds(
    lambda c, model, usage, extra: {
        "id": "chatcmpl-drawn",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        **({"choices": c} if c is not None else {}),
        **({"usage": usage} if usage is not None else {}),
        **extra,
    },
    choices,
    model_ids,
    st.one_of(
        st.none(),
        st.just({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}),
        st.just({"prompt_tokens": None, "completion_tokens": "3"}),
    ),
    st.dictionaries(
        st.sampled_from(["system_fingerprint", "x_groq", "prompt_filter_results", "warning"]),
        server_text,
        max_size=2,
    ),
)
chat_replies = st.one_of(
    completions.map(lambda c: Reply(body=_dumps(c))),
    completions.map(lambda c: Reply(body=_dumps(c))),
    completions.map(lambda c: Reply(body=_dumps(c))),
    completions.map(lambda c: Reply(body=_dumps(c), content_type="text/html")),
    error_replies(),
    st.builds(lambda c, at: Reply(body=_dumps(c), stall_at=at), completions, st.integers(1, 40)),
    error_replies(),
    error_replies(),
    redirects,
)

# --- SSE framing ------------------------------------------------------------------------------------------

deltas = st.one_of(
    st.builds(lambda c: {"content": c}, content_text),
    st.builds(lambda c: {"role": "assistant", "content": c}, content_text),
    st.just({"content": None}),
    st.just(
        {
            "content": None,
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ],
        }
    ),
    st.just({}),
    st.builds(lambda c: {"content": c, "x_unknown": [1, 2]}, content_text),
)
chunk_shapes = st.one_of(
    st.builds(
        lambda d, f: chunk([{"index": 0, "delta": d, "finish_reason": f}]),
        deltas,
        st.sampled_from([None, None, None, "stop", "length"]),
    ),
    st.just(chunk([])),  # empty choices
    st.just(chunk([{"index": 0, "finish_reason": None, "content_filter_results": {"hate": {}}}])),  # no delta
    st.just(chunk([], usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})),  # usage only
    st.just(chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})),
    st.builds(
        lambda m: chunk([{"index": 0, "delta": {"content": "x"}, "finish_reason": None}], model=m),
        server_text,
    ),
)
events = st.one_of(
    chunk_shapes.map(lambda c: b"data: " + _dumps(c) + b"\n\n"),
    chunk_shapes.map(lambda c: b"data: " + _dumps(c) + b"\n\n"),
    st.just(b": ping\n\n"),
    st.just(b"data: {not json\n\n"),
    server_text.map(lambda s: b"data: " + s.encode() + b"\n\n"),
    error_objects.map(lambda e: b"event: error\ndata: " + _dumps(e) + b"\n\n"),
    error_objects.map(lambda e: b"data: " + _dumps(e) + b"\n\n"),
    error_objects.map(lambda e: b"error: " + _dumps(e) + b"\n\n"),  # llama.cpp's refusal mid-stream
    st.just(b"event: ping\ndata: {}\n\n"),
    st.just(b"retry: 100\nid: 7\n\n"),
)
sse_bodies = st.builds(
    lambda evs, done: b"".join(evs) + (b"data: [DONE]\n\n" if done else b""),
    st.lists(events, max_size=8),
    st.booleans(),
)
stream_replies = st.one_of(
    st.builds(lambda b: Reply(body=b, content_type="text/event-stream", chunked=True), sse_bodies),
    st.builds(lambda b: Reply(body=b, content_type="text/event-stream", chunked=True), sse_bodies),
    st.builds(lambda b: Reply(body=b, content_type="text/event-stream", chunked=True), sse_bodies),
    st.builds(
        lambda b, at: Reply(
            body=b + b"data: [DONE]\n\n",
            content_type="text/event-stream",
            chunked=True,
            stall_at=min(at, len(b)),
        ),
        sse_bodies,
        st.integers(0, 400),
    ),
    st.builds(lambda b, ct: Reply(body=b, content_type=ct, chunked=True), sse_bodies, content_types),
    completions.map(lambda c: Reply(body=_dumps(c))),  # a server that ignores stream=True
    error_replies(),
    error_replies(),
    redirects,
)
models_or_errors = st.one_of(
    models_replies,
    models_replies,
    models_replies,
    error_replies(),
    error_replies(),
    error_replies(),
    redirects,
    st.builds(lambda r, at: Reply(body=r.body, stall_at=at), models_replies, st.integers(1, 30)),
)
