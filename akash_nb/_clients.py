"""Connecting a lesson: the two values of the guide's client block (`connection_values()`), `client()`, and
`choose_model()`."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx2
import openai
from IPython.lib.pretty import PrettyPrinter

from . import _error_display as error_display
from . import _render as render
from ._core import config, parameters
from ._core import failures as errors
from ._core import in_browser as browser
from ._core import request_checks as preflight
from ._core.api_key import Secret
from ._core.connection import Connection, Stopwatch, attach, connection_for, note, resolve_model
from ._engine import embedded as local
from ._replay import cassettes, in_tab, loopback

NO_KEY = cassettes.HANDED_OUT_KEY  # the SDK insists on a key; providers that need none get this placeholder
DEFAULT_RETRIES = 2  # the SDK retries 408/409/429/5xx and connection errors, honouring Retry-After

# How long a learner waits for a server that says nothing (issue 23, rule 5): at the defaults, a stalled
# server (it accepted the connection and sends no byte) gives its sentence within 60 s. httpx's read
# timeout is the longest silence between two bytes, not a deadline for the whole answer, so a stream
# that sends steadily runs as long as it needs. The one long silence of a working server is before the
# first byte of an answer that is not streamed: the embedded model on a slow laptop takes 20-40 s for 512
# tokens, so READ_TIMEOUT leaves room for that. A class server's queue can be longer: its learner is told
# to raise the timeout (the sentence says how), or streams. The two add up to 60 s, so even a connect that
# took all its time, then a stall, gives the sentence within 60 s.
CONNECT_TIMEOUT = 10.0  # seconds; a loopback or LAN server connects in milliseconds, a far one in < 1 s
READ_TIMEOUT = 50.0  # seconds of silence (also to write the request); with a slow connect still <= 60 s


def default_timeout() -> httpx2.Timeout:
    """The timeout `client()` gives the SDK when none is asked for, read from the two constants above
    when the client is made (so a test can scale the whole policy down)."""
    return httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)


class _NoWaitingTwice(openai.DefaultHttpxClient):
    """The SDK's own HTTP client, except that a read timeout is not retried.

    The SDK retries every httpx TimeoutException, so with 2 retries a server that went silent holds the
    learner three read timeouts (6 minutes at the old 120 s). A server that accepted the request and then
    said nothing for READ_TIMEOUT is stalled, or too slow for this timeout: sending the same request again
    doubles the wait and, for a queue, adds to it. Raised as the SDK's own APITimeoutError, which the SDK
    passes on at once ("Propagate OpenAIErrors as-is", openai/_base_client.py), so `errors.explain` and
    every `except openai.APITimeoutError` see what they saw before. A connect timeout, a refused or dropped
    connection, 408/409/429 and 5xx keep their `max_retries`."""

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        try:
            return super().send(request, **kwargs)
        except httpx2.ReadTimeout as exc:
            raise openai.APITimeoutError(request=request) from exc


class Key(str):
    """The api_key value for `openai.OpenAI(api_key=...)`: a plain str to the SDK (which formats it into
    the Authorization header), masked when shown (`repr`, so a cell that ends in `api_key` shows no key).
    `print(api_key)` still prints it: never do that in a notebook."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(Secret(str.__str__(self)))

    def _repr_pretty_(self, printer: PrettyPrinter, cycle: bool) -> None:
        printer.text(repr(self))


@functools.cache
def _tls() -> ssl.SSLContext:
    """The SDK's own default TLS settings, made once: loading the CA certificates takes ~80 ms, which every
    client() paid again (an SSLContext may be shared by any number of clients and threads)."""
    return httpx2.create_ssl_context()


def client(
    provider: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    max_retries: int = DEFAULT_RETRIES,
    show: bool = True,
) -> openai.OpenAI:
    """An `openai.OpenAI` client for the configured provider (see `_core/config.py` for the lookup order).

    `timeout`: seconds for each step (connecting, and the longest silence while the answer arrives); by
    default 10 s to connect and 50 s of silence (`default_timeout()`). A read timeout is never retried (a
    stalled server gives its sentence after one timeout); `max_retries` covers every other retried failure.

    In a notebook it shows one banner: provider, URL, model, and where the key came from (never the key).
    """
    parameters.bool_param("show", show, example="show=False")
    # First, so that a configuration error in this very call is shown as one sentence too; whatever `show`
    # says (it decides only the banner): the display is what masks a key in an error reaching the screen.
    error_display.install_error_display()
    parameters.number_param("timeout", timeout, low=0.001, high=86_400, example="timeout=120")
    parameters.int_param("max_retries", max_retries, low=0, high=100, example="max_retries=2", optional=False)
    conn, key = _resolve(provider, base_url=base_url, api_key=api_key, model=model)
    url = conn.base_url
    stopwatch = Stopwatch()
    openai_client = openai.OpenAI(
        api_key=key,
        base_url=url,
        timeout=default_timeout() if timeout is None else timeout,  # the learner's own timeout wins
        # A retired service will not come back in a second: say so at once instead of retrying.
        max_retries=0 if conn.provider.retired_on else max_retries,
        # A web page where the API should be (a base URL without /v1, a login portal) would otherwise come
        # back from create() as a plain str; this makes it an error that errors.explain can name.
        http_client=_NoWaitingTwice(
            verify=True if browser.IN_BROWSER else _tls(),  # in a tab the browser does TLS itself
            event_hooks={
                # A parameter that cannot work (max_tokens="ten") is refused here in one sentence, not
                # sent to a server that may answer "internal error" and be retried.
                "request": [stopwatch.on_request, preflight.refuse_bad_request],
                # A key a server echoes in a failed answer is masked before the SDK's exception quotes it.
                "response": [stopwatch.on_response, errors.check_content_type, errors.mask_error_body],
            },
        ),
    )
    attach(openai_client, conn, stopwatch)
    if show:
        render.show_connection(conn)
    return openai_client


def _resolve(
    provider: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
) -> tuple[Connection, Key]:
    """The configured provider's connection and key (starting the embedded or replay server if needed)."""
    settings = config.resolve(provider, base_url=base_url, api_key=api_key, model=model)
    url, key, detail = settings.base_url, settings.api_key, ""
    if settings.provider.name == "local":
        embedded = local.ensure_server()
        url, key = embedded.base_url, embedded.key
        settings.sources["api_key"] = "made for this server at start (never shown)"
    elif settings.provider.name == "replay" and browser.IN_BROWSER:
        url, detail = browser.REPLAY_URL, in_tab.replay_detail()  # answered in the tab, no server
    elif settings.provider.name == "replay":
        replaying = loopback.ensure_server()
        url, detail = replaying.base_url, replaying.describe_source()
    elif settings.provider.name == "browser":
        detail = browser.MODEL_SHOWN
        in_tab.warm_up()  # the model loads while the learner reads the banner, not at the first request
    shown_as = "class server" if settings.class_server else ""
    conn = Connection(settings.provider, url or "", settings.model, settings.key_source, detail, shown_as)
    note(conn)
    return conn, Key(key.reveal() if key else NO_KEY)


def connection_values(
    provider: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    show: bool = True,
) -> tuple[Key, str]:
    """`(api_key, base_url)` for the guide's `openai.OpenAI(api_key=api_key, base_url=base_url)`, from the
    configuration (see `akash_nb._core.config` for the lookup order).

    In a notebook it shows one banner: provider, URL, model, and where the key came from (never the key).
    Providers that need no key get a placeholder, because the SDK insists on one.
    """
    parameters.bool_param("show", show, example="show=False")
    error_display.install_error_display()  # whatever `show` says: it masks keys in errors (show: the banner)
    conn, key = _resolve(provider, base_url=base_url, api_key=api_key, model=model)
    if show:
        render.show_connection(conn)
    return key, conn.base_url


def choose_model(openai_client: openai.OpenAI, requested: str | None = None, *, show: bool = True) -> str:
    """The model id to pass as `model=`; shows the substitution when `requested` is not served."""
    parameters.text_param(
        "requested",
        requested,
        example="choose_model(client, 'SmolLM2-135M-Instruct')",
        identifier=True,
        allow_empty=True,
    )
    choice = resolve_model(openai_client, requested)
    if show:
        render.show_model_choice(choice, connection_for(openai_client))
    return choice.model
