"""What went wrong, in one sentence a learner can act on: `explain()` turns any failure into the row of
`STATUS` (HTTP statuses) or `NO_STATUS` (failures with no status) that says what to do, whether the OpenAI
SDK retried it, and what is lost."""

from __future__ import annotations

import json
import socket
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from . import compat, masking, parameters, untrusted
from .exceptions import NOTHING, AkashNBError, Failure, NoRecordingError
from .providers import RETIRED_ON

if TYPE_CHECKING:  # for the annotation only: connection imports this module
    from .connection import Connection

__all__ = [
    "NO_STATUS",
    "STATUS",
    "check_content_type",
    "ended_early",
    "explain",
    "failure_for",
    "mask_error_body",
    "shape_error",
]


# HTTP status -> what the user sees. {provider} is the provider's title.
STATUS: dict[int, Failure] = {
    400: Failure(
        "400 bad request", "{provider} rejected the request as malformed (400): {detail}", False, NOTHING
    ),
    401: Failure(
        "401 key not accepted (e.g. LiteLLM `auth_error`)",
        "{provider} did not accept the key (401): check that the whole key was pasted, or create a new one.",
        False,
        NOTHING,
    ),
    402: Failure(
        "402 no credits",
        "{provider} answered 402: this key has no credits left; add credits or "
        "switch to the local provider (unset AKASH_NB_PROVIDER).",
        False,
        NOTHING,
    ),
    403: Failure(
        "403 forbidden",
        "{provider} refused this key access (403): the key may lack permission for this model.",
        False,
        NOTHING,
    ),
    404: Failure(
        "404 unknown model or path",
        "{provider} does not serve this (404): {detail} Pick a model "
        "from client.models.list(), and check that the base URL ends in /v1.",
        False,
        NOTHING,
    ),
    408: Failure(
        "408 request timeout", "{provider} timed out waiting for the request (408); try again.", True, NOTHING
    ),
    409: Failure(
        "409 conflict", "{provider} reported a conflict (409); try again in a moment.", True, NOTHING
    ),
    410: Failure(
        "410 gone (retired model or endpoint)",
        "{provider} says this is gone for good (410): "
        "{detail} Pick a current model from client.models.list().",
        False,
        NOTHING,
    ),
    413: Failure(
        "413 request too large",
        "{provider} says the request is too large (413): shorten the prompt or the history.",
        False,
        NOTHING,
    ),
    422: Failure(
        "422 unprocessable", "{provider} could not process the request (422): {detail}", False, NOTHING
    ),
    429: Failure(
        "429 rate limited (Retry-After)",
        "{provider} is rate-limiting this key (429{wait}); wait a minute or send fewer requests at once.",
        True,
        NOTHING,
    ),
    500: Failure(
        "500 internal error", "{provider} had an internal error (500); try again in a moment.", True, NOTHING
    ),
    502: Failure(
        "502 bad gateway",
        "{provider}'s gateway got a bad answer from the model (502); try again in a moment.",
        True,
        NOTHING,
    ),
    503: Failure(
        "503 unavailable", "{provider} is unavailable right now (503); try again in a moment.", True, NOTHING
    ),
    504: Failure(
        "504 gateway timeout",
        "{provider} found no free model backend in time (504); try again, or use a smaller model.",
        True,
        NOTHING,
    ),
    # Not standard HTTP (Anthropic-style "overloaded"); the SDK retries it like any status >= 500.
    529: Failure(
        "529 overloaded",
        "{provider} is overloaded (529); try again in a moment, or switch provider.",
        True,
        NOTHING,
    ),
}

CUT_KEPT = "the rest of the answer; the text that arrived is kept, marked cut (streaming.collect_stream)"

# Failures with no HTTP status.
NO_STATUS: dict[str, Failure] = {
    "timeout": Failure(
        "timeout (no answer in time)",
        "{provider} did not answer in time; check the "
        "connection, or raise the timeout: akash_nb.client(timeout=...).",
        True,
        NOTHING,
    ),
    "refused": Failure(
        "connection refused",
        "Nothing is listening at {url}; check the URL and that the "
        "server is running (akash-nb doctor checks every provider).",
        True,
        NOTHING,
    ),
    "dns": Failure(
        "host name does not resolve",
        "The host in {url} does not resolve; check the spelling "
        "of the base URL and that this machine is online.",
        True,
        NOTHING,
    ),
    "connection": Failure(
        "other connection failure",
        "Could not reach {provider} at {url}; check the URL "
        "and that the server is running (akash-nb doctor checks every provider).",
        True,
        NOTHING,
    ),
    "retired": Failure(
        "the retired Akash Chat API (provider akash-chat) unreachable, 404 or 410",
        "The Akash Chat API (chatapi.akash.network) was retired on " + RETIRED_ON + "; move "
        "to AkashML: create a key at akashml.com, set AKASHML_API_KEY, and set "
        "AKASH_NB_PROVIDER=akashml (or unset it).",
        False,
        NOTHING,
    ),
    "bad-json": Failure(
        "malformed JSON answer",
        "{provider} sent an answer that is not valid JSON "
        "({detail}); the server or a proxy in front of it is broken; try again, or check "
        "the base URL.",
        False,
        NOTHING,
        "the parse error",
    ),
    "bad-sse": Failure(
        "malformed SSE event mid-stream",
        "{provider} sent a streamed event that is not "
        "valid JSON ({detail}); the answer stopped there, and the text so far is kept.",
        False,
        CUT_KEPT,
        "the parse error",
    ),
    "content-type": Failure(
        "wrong content type (e.g. text/html)",
        "{provider} answered with {detail} "
        "instead of the API's JSON: the base URL {url} probably points at a web page, "
        "not the API (API URLs usually end in /v1).",
        False,
        NOTHING,
        "the content type",
    ),
    "cut": Failure(
        "connection closed mid-stream",
        "{provider} closed the connection in the middle of the "
        "answer; the text so far is kept, marked cut; ask again for the rest.",
        False,
        CUT_KEPT,
    ),
    "stalled": Failure(
        "stalled mid-stream (connection open, nothing more sent within the read timeout)",
        "{provider} stopped sending in the middle of the answer (nothing for {detail}); the text so far is "
        "kept, marked cut; ask again for the rest, or raise the timeout: akash_nb.client(timeout=...).",
        False,
        CUT_KEPT,
        "the read timeout",
    ),
    "dropped": Failure(
        "connection closed mid-answer (not streamed)",
        "{provider} closed the connection before the answer was complete; try again.",
        True,
        NOTHING,
    ),
    "stream-error": Failure(
        "error event inside a stream",
        "{provider} reported an error in the middle of "
        "the answer: {detail} The text so far is kept, marked cut.",
        False,
        CUT_KEPT,
    ),
    "context": Failure(
        "prompt over the model's context (e.g. llama.cpp `exceed_context_size_error`, also "
        "sent inside a stream)",
        "{provider} says the request does not fit the model's "
        "context ({detail}); shorten the prompt or the history, or lower max_tokens.",
        False,
        NOTHING,
    ),
    "bad-parameter": Failure(
        "a parameter of the wrong type or range that the server failed on (llama.cpp "
        "answers 500 to max_tokens='ten')",
        "{provider} failed on a parameter of the request ({status}): {detail}",
        False,
        NOTHING,
        "which parameter and its fix (akash_nb._core.request_checks)",
    ),
    "interrupted": Failure(
        "Ctrl-C or the kernel's stop button during a stream (panel, ChatBox, Conversation)",
        "The answer was interrupted (Ctrl-C or the stop button); the "
        "text so far is kept, marked cut; run it again for the rest.",
        False,
        CUT_KEPT,
    ),
    # In a browser tab (_core/in_browser.py): fetch's failures (what a tab cannot start: exceptions.TAB).
    "tab-unreachable": Failure(
        "in a browser tab: the server cannot be reached (it is down, or its CORS does not allow this site)",
        "The browser could not reach {provider} at {url}: it is down, or it does not allow requests "
        "from this site (CORS); ask its operator to allow this site's origin, or run the lessons "
        "locally (make lab).",
        True,
        NOTHING,
    ),
    "ended-early": Failure(
        "stream ended without a finish_reason",
        "{provider} ended the stream before the model finished (no finish_reason was "
        "sent); the text so far is kept, marked cut.",
        False,
        CUT_KEPT,
    ),
    # Answers whose shape holds no text (akash_nb._core.answers reads every shape).
    "bad-chunk": Failure(
        "a streamed event that is JSON but not a chat completion chunk (null, a number, a list, choices "
        "that are not a list)",
        "{provider} sent a streamed event that is not a chat completion chunk; the answer stopped there, and "
        "the text so far is kept, marked cut; check the base URL, or try again.",
        False,
        CUT_KEPT,
    ),
    "no-model-list": Failure(
        "a /models answer that is not a list of models",
        "{provider} answered {url}/models, but not with a list of models; check the base URL (it usually "
        "ends in /v1).",
        False,
        NOTHING,
    ),
    "no-choices": Failure(
        "no choices in the answer (only Azure's prompt filter results, or only usage)",
        "{provider} sent an answer with no choices, so there is no text to show; try again, and if it "
        "happens again look at what the server sends with akash_nb.show_http(...).",
        False,
        NOTHING,
    ),
    "no-message": Failure(
        "a choice with no message (Azure's content filter held the answer back)",
        "{provider} sent a choice with no message (finish_reason={detail}): its content filter may have "
        "held the answer back; rephrase the prompt, or try again.",
        False,
        NOTHING,
        "the finish_reason",
    ),
    "tool-calls-only": Failure(
        "the answer is only tool calls (content: null with tool_calls) where text is needed "
        "(Conversation, ChatBox)",
        "{provider} answered with tool calls and no text: {detail}; a conversation keeps text only, so "
        "run the calls yourself as lesson 08 does, or ask without tools=.",
        False,
        NOTHING,
        "the calls, e.g. get_weather({...})",
    ),
}

# Whatever looks like a key in a server's message (LiteLLM echoes the key it got) is masked before we
# repeat the message.
_RETRY_COUNT_HEADER = "x-stainless-retry-count"  # set by the SDK on every attempt: 0, 1, 2, ...


def _remember_sent_key(error: BaseException) -> str:
    """The key a failed request carried is masked by value, whatever made the client (a plain
    openai.OpenAI too), so a server echoing it cannot put it on screen. Returns it ("" if none).

    Up to openai 3.57 the exception's request still carries the Authorization header; from 3.58 the SDK
    takes it out (`_error_request`), so the key is read from the client the exception was raised in: the
    `self` (or a stream's `_client`) of a frame its traceback passes through."""
    if not isinstance(error, openai.APIError):
        return ""
    request = getattr(error, "request", None)
    sent = "" if request is None else _remember_bearer(request)
    return sent or _remember_client_key(error)


def _remember_client_key(error: BaseException) -> str:
    """The api_key of the openai client whose method raised `error` ("" if none is found), remembered."""
    for frame, _ in traceback.walk_tb(error.__traceback__):
        owner = frame.f_locals.get("self")
        for candidate in (owner, compat.stream_client(owner)):
            if isinstance(candidate, (openai.OpenAI, openai.AsyncOpenAI)):
                key = candidate.api_key
                if isinstance(key, str) and key:
                    masking.remember(key)
                    return key
    return ""


def _remember_bearer(request: httpx2.Request) -> str:
    """The Bearer key `request` carries ("" if none), remembered for masking."""
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return ""
    key = str(auth[7:]).strip()
    masking.remember(key)
    return key


def _body(error: openai.APIError) -> dict[str, Any]:
    """The error object: the SDK already unwraps {"error": {...}} into `error.body` for status errors; an
    error event inside a stream keeps whatever shape the server sent."""
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return dict(body["error"])
    return body if isinstance(body, dict) else {}


def _detail(error: openai.APIError, limit: int = untrusted.QUOTE_LIMIT) -> str:
    """The server's own message, from the usual body shapes ({"message"}, {"detail"}, {"error": "..."}),
    as a sentence may quote it (`untrusted.shown`)."""
    body = _body(error)
    message = body.get("message") or body.get("detail") or body.get("error")
    # Untrusted: masked, bounded and on one line before it is quoted (a 400's message may be 50 MB).
    text = untrusted.shown(str(message or error.message).strip(), limit).rstrip(".")
    return text + "." if text else ""


def _error_type(error: openai.APIStatusError) -> str | None:
    return _body(error).get("type")


def _retries_taken(error: openai.APIError) -> int:
    """How many retries the SDK made before giving up (the last attempt's retry-count header)."""
    value = error.request.headers.get(_RETRY_COUNT_HEADER, "0")
    return int(value) if value.isdigit() else 0


def _was_streaming(error: openai.APIError) -> bool:
    """The failed request asked for a stream (its JSON body says "stream": true)."""
    try:
        body = json.loads(error.request.content or b"{}")
    except (ValueError, RuntimeError):  # RuntimeError: a streamed request body that was not kept
        return False
    return isinstance(body, dict) and body.get("stream") is True


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _connection_kind(error: openai.APIConnectionError, streaming: bool | None) -> str:
    """Which transport failure this is, from the chain of exceptions under the SDK's."""
    if isinstance(error, openai.APITimeoutError):
        # Out of a stream's body (collect_stream says streaming=True): it began, then went quiet.
        return "stalled" if streaming else "timeout"
    chain = list(_causes(error.__cause__))
    if any(type(e).__module__ == "httpx2_jsfetch" for e in chain):  # fetch in a browser tab failed
        return "tab-unreachable"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "dns"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "refused"
    if any(type(e).__name__ == "RemoteProtocolError" and "incomplete" in str(e) for e in chain):
        # httpx2/h11 say "peer closed connection without sending complete message body"
        streamed = _was_streaming(error) if streaming is None else streaming
        return "cut" if streamed else "dropped"
    return "connection"


def _is_context_error(body: dict[str, Any]) -> bool:
    """llama.cpp says `exceed_context_size_error`; vLLM and OpenAI say "maximum context length"."""
    # The start of each field is enough (and a 50 MB message is not lowered whole).
    text = " ".join(str(body.get(name, ""))[:1000] for name in ("type", "code", "message")).lower()
    return (
        "exceed_context" in text
        or "context length" in text
        or "context size" in text
        or "context_length_exceeded" in text
    )


def _parameter_problem(error: openai.APIStatusError) -> str:
    """The sentence `parameters.check_parameters` gives for the failed request's body, if any."""
    try:
        body = json.loads(error.request.content or b"{}")
    except (ValueError, RuntimeError, UnicodeDecodeError):
        return ""
    try:
        parameters.check_parameters(body)
    except AkashNBError as problem:
        return problem.sentence
    return ""


def _wait(error: openai.APIStatusError) -> str:
    after = (error.response.headers.get("retry-after") or "").strip()
    # Seconds as ASCII digits only, and a plausible count of them: the header is the server's text.
    return f", Retry-After: {after} s" if after.isascii() and after.isdigit() and len(after) <= 6 else ""


def _read_timeout(error: openai.APIError) -> str:
    """The read timeout the failed request was sent with ("50 s"), from httpx's request extensions."""
    read = error.request.extensions.get("timeout", {}).get("read")
    return f"{read:g} s" if isinstance(read, int | float) else "the read timeout"


def failure_for(
    error: BaseException, *, retired: bool = False, streaming: bool | None = None
) -> tuple[Failure, str] | None:
    """The table row for `error` and the detail to fill into it, or None if no row fits. `retired`: the
    request went to a provider that has stopped answering (`Provider.retired_on`)."""
    if isinstance(error, openai.APIStatusError):
        if retired and error.status_code in (404, 410):
            return NO_STATUS["retired"], ""
        if _is_context_error(_body(error)):
            return NO_STATUS["context"], _detail(error).rstrip(".")
        if error.status_code in (400, 422, 500):
            problem = _parameter_problem(error)
            if problem:
                return NO_STATUS["bad-parameter"], problem
        failure = STATUS.get(error.status_code) or Failure(
            f"HTTP {error.status_code}",
            f"{{provider}} answered HTTP {error.status_code}: {{detail}}",
            error.status_code >= 500,
            NOTHING,
        )
        return failure, _detail(error)
    if isinstance(error, openai.APIConnectionError):
        kind = _connection_kind(error, streaming)
        if retired and kind in ("dns", "refused", "connection", "timeout"):
            kind = "retired"
        return NO_STATUS[kind], _read_timeout(error) if kind == "stalled" else ""
    if isinstance(error, openai.APIResponseValidationError):
        content_type = error.response.headers.get("content-type", "no content type").split(";")[0]
        if "json" not in content_type and "event-stream" not in content_type:
            return NO_STATUS["content-type"], untrusted.shown(content_type, 80)
        return NO_STATUS["bad-json"], "it does not match the chat completion schema"
    if isinstance(error, openai.APIError):  # no status: an error event inside a stream
        if _is_context_error(_body(error)):
            return NO_STATUS["context"], _detail(error).rstrip(".")
        return NO_STATUS["stream-error"], _detail(error)
    if isinstance(error, json.JSONDecodeError):
        detail = f"{error.msg} at character {error.pos}"
        return NO_STATUS["bad-sse" if streaming else "bad-json"], detail
    return None


def explain(
    error: BaseException, where: Connection | str | None = None, *, streaming: bool | None = None
) -> AkashNBError:
    """The AkashNBError (with its one sentence) for an exception raised while talking to a provider.

    `where`: the connection the request went to (its provider's title, name and URL go into the sentence),
    or just a title for the provider, or None ("the provider"). `streaming`: the exception came out of
    iterating a stream (None: infer it from the request when the exception carries one)."""
    if isinstance(error, AkashNBError):
        return error
    if isinstance(error, KeyboardInterrupt):
        return AkashNBError(NO_STATUS["interrupted"].sentence, original=error)
    provider_title, retired, url = _where(where)
    _remember_sent_key(error)
    if isinstance(error, openai.APIStatusError) and _error_type(error) == "no_recording":
        # The replay server's miss: its message already says what was asked and how to record it.
        return NoRecordingError(_detail(error, 2000), original=error)  # our own sentence: it is longer
    found = failure_for(error, retired=retired, streaming=streaming)
    if found is None:
        shown = untrusted.shown(str(error))
        return AkashNBError(f"{provider_title}: {type(error).__name__}: {shown}", original=error)
    failure, detail = found
    wait = _wait(error) if isinstance(error, openai.APIStatusError) else ""
    status = getattr(error, "status_code", "")
    sentence = (
        failure.sentence.format(
            provider=provider_title,
            detail=detail,
            url=untrusted.shown_url(url) if url else "its URL",
            wait=wait,
            status=status,
        )
        .replace(" .", ".")
        .replace(" ()", "")
    )
    if failure.retry and isinstance(error, openai.APIError):
        retries = _retries_taken(error)
        if retries:
            sentence = sentence.rstrip(".") + f" (still failing after {retries} automatic retries)."
    return AkashNBError(sentence, original=error, retried=failure.retry)


def _where(where: Connection | str | None) -> tuple[str, bool, str]:
    """(title, retired?, URL) of the provider a request went to, for the sentence: from a Connection, or
    just a title; anything else (None included) is "the provider". Read by attribute: errors sits below
    connection, which imports it."""
    if isinstance(where, str) and where:
        return where, False, ""
    describe = getattr(where, "describe", None)
    if (
        callable(describe)
        and hasattr(where, "provider")
        and isinstance(getattr(where, "base_url", None), str)
    ):
        retired = bool(getattr(where.provider, "retired_on", None))  # type: ignore[union-attr]
        return str(describe()), retired, where.base_url  # type: ignore[union-attr]
    return "the provider", False, ""


def shape_error(kind: str, where: Connection | str | None = None, detail: str = "") -> AkashNBError:
    """The error for an answer whose shape holds no text, or is not the API's: `kind` is "no-choices",
    "no-message", "tool-calls-only", "bad-chunk" or "no-model-list" (a row of NO_STATUS)."""
    title, _, url = _where(where)
    sentence = NO_STATUS[kind].sentence.format(provider=title, detail=detail, url=url or "its URL")
    return AkashNBError(sentence, retried=False)


def ended_early(where: Connection | str | None = None) -> AkashNBError:
    """The error for a stream that ended cleanly but before any finish_reason."""
    title = _where(where)[0]
    return AkashNBError(NO_STATUS["ended-early"].sentence.format(provider=title), retried=False)


# Content types an OpenAI-compatible API answers with; anything else (a login page, a proxy's error page,
# the project's website) means the base URL points somewhere else.
API_CONTENT_TYPES = ("application/json", "text/event-stream")


def check_content_type(response: httpx2.Response) -> None:
    """An httpx2 response hook: refuse a successful answer that is not JSON or SSE.

    Without it the SDK returns a non-JSON body as a plain `str` from `create()` (no error at all), and
    the learner meets `'str' object has no attribute 'choices'`. Use it as
    `openai.OpenAI(..., http_client=openai.DefaultHttpxClient(event_hooks={"response":
    [check_content_type]}))`. Raising an OpenAIError here makes the SDK pass it on without retrying.
    """
    if not response.is_success:
        return
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in API_CONTENT_TYPES:
        response.read()
        raise openai.APIResponseValidationError(
            response=response,
            body=response.text[:500],
            message="Expected application/json or text/event-stream but received "
            f"{untrusted.shown(content_type, 80) or 'none'}.",
        )


def mask_error_body(response: httpx2.Response) -> None:
    """An httpx2 response hook: a failed answer's body with the key masked (`mask_all`) before the SDK builds
    its exception from it, so that even `str()` of the SDK's own exception, in plain Python and whatever
    `show` said, shows no key a server echoed. The key the request carried is remembered first."""
    if response.status_code < 400:
        return
    _remember_bearer(response.request)
    response.read()
    text = response.text
    masked = masking.mask_all(text)
    if masked != text:
        compat.replace_body(response, masked.encode(response.encoding or "utf-8", errors="replace"))
