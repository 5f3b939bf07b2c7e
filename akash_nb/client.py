"""The two values of the guide's client block, `client()`, and honest model choice.

Lessons build their client exactly as the guide does:

    api_key, base_url = akash_nb.connection_values()     # plumbing: shows provider, URL, key source
    import openai
    client = openai.OpenAI(api_key=api_key, base_url=base_url)   # the guide's own block

so that the guide's cells run unchanged in a plain Python file with only `openai` installed and the two
values set by hand. What this module adds is plumbing: where the key and URL come from, starting the
embedded model or the replay server, and saying which provider and model really answer.

A plain `openai.OpenAI` is recognised by its base URL (every URL `connection_values()` or `client()` hands
out is noted), so footers, the panel and error sentences name its provider. Two things need a client made by
`akash_nb.client()`, which adds hooks to the SDK's HTTP client: `last_latency()` (a plain client is not
timed), and turning a web page at the base URL into an error sentence.
"""

from __future__ import annotations

import functools
import ssl
import time
import weakref
from dataclasses import dataclass

import openai

from . import checks, config, errors
from .providers import Provider
from .secret import Secret

DEFAULT_TIMEOUT = 120.0  # a small CPU model writing 500 tokens takes tens of seconds
NO_KEY = "no-key-needed"  # the SDK insists on a key; providers that need none get this placeholder
DEFAULT_RETRIES = 2  # the SDK retries 408/409/429/5xx and connection errors, honouring Retry-After


@dataclass(frozen=True)
class Connection:
    """What a client is connected to. Holds no key."""

    provider: Provider
    base_url: str
    model: str | None  # the configured model, if any
    key_source: str
    detail: str = ""  # e.g. which provider a replay's recordings came from

    def describe(self) -> str:
        return self.provider.title + (f" ({self.detail})" if self.detail else "")

    def explain(self, error: BaseException) -> errors.AkashNBError:
        """The one-sentence error for a failure talking to this provider (see `errors.explain`)."""
        return errors.explain(error, self.describe(), provider_name=self.provider.name, url=self.base_url)


_connections: weakref.WeakKeyDictionary[openai.OpenAI, Connection] = weakref.WeakKeyDictionary()
# Every base URL handed out in this process -> its connection: how a plain openai.OpenAI is recognised.
_by_url: dict[str, Connection] = {}


def _url_key(url: object) -> str:
    return str(url).rstrip("/")


def _note(conn: Connection) -> None:
    if conn.base_url:
        _by_url[_url_key(conn.base_url)] = conn


def known_connections() -> list[Connection]:
    """Every connection handed out in this process (one per base URL)."""
    return list(_by_url.values())


class Key(str):
    """The api_key value for `openai.OpenAI(api_key=...)`: a plain str to the SDK (which formats it into
    the Authorization header), masked when shown (`repr`, so a cell that ends in `api_key` shows no key).
    `print(api_key)` still prints it: never do that in a notebook."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(Secret(str.__str__(self)))

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))


class Stopwatch:
    """Times each HTTP request a client sends, from sending it to the response's headers: for an answer
    that is not streamed, the whole answer. For a stream it is only the wait for the headers, which a server
    may send before the model has written anything: it is not the first token (time that at the first
    chunk, as lesson 05 does). Kept out of the lesson's own call, so the guide's code stays as the guide
    wrote it."""

    def __init__(self) -> None:
        self._started: float | None = None
        self.seconds: float | None = None  # the last request's

    def on_request(self, request) -> None:
        self._started = time.perf_counter()

    def on_response(self, response) -> None:
        if self._started is not None:
            self.seconds = time.perf_counter() - self._started


_stopwatches: weakref.WeakKeyDictionary[openai.OpenAI, Stopwatch] = weakref.WeakKeyDictionary()


@functools.cache
def _tls() -> ssl.SSLContext:
    """The SDK's own default TLS settings, made once: loading the CA certificates takes ~80 ms, which every
    client() paid again (an SSLContext may be shared by any number of clients and threads)."""
    import httpx2

    return httpx2.create_ssl_context()


def client(
    provider: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_RETRIES,
    show: bool = True,
) -> openai.OpenAI:
    """An `openai.OpenAI` client for the configured provider (see `akash_nb.config` for the lookup order).

    In a notebook it shows one banner: provider, URL, model, and where the key came from (never the key).
    """
    checks.bool_param("show", show, example="show=False")
    if show:  # first, so that a configuration error in this very call is shown as one sentence too
        from . import render

        render.install_error_display()
    checks.number_param("timeout", timeout, low=0.001, high=86_400, example="timeout=120",
                        optional=False)
    checks.int_param("max_retries", max_retries, low=0, high=100, example="max_retries=2", optional=False)
    conn, key = _resolve(provider, base_url=base_url, api_key=api_key, model=model)
    url = conn.base_url
    stopwatch = Stopwatch()
    openai_client = openai.OpenAI(
        api_key=key,
        base_url=url,
        timeout=timeout,
        # A retired service will not come back in a second: say so at once instead of retrying.
        max_retries=0 if conn.provider.retired_on else max_retries,
        # A web page where the API should be (a base URL without /v1, a login portal) would otherwise come
        # back from create() as a plain str; this makes it an error that errors.explain can name.
        http_client=openai.DefaultHttpxClient(verify=_tls(), event_hooks={
            # A parameter that cannot work (max_tokens="ten") is refused here in one sentence, not sent to a
            # server that may answer "internal error" and be retried.
            "request": [stopwatch.on_request, checks.refuse_bad_request],
            "response": [stopwatch.on_response, errors.check_content_type],
        }),
    )
    _stopwatches[openai_client] = stopwatch
    _connections[openai_client] = conn
    if show:
        render.show_connection(conn)  # imported above, with the error display
    return openai_client


def _resolve(provider: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
             model: str | None = None) -> tuple[Connection, Key]:
    """The configured provider's connection and key (starting the embedded or replay server if needed)."""
    settings = config.resolve(provider, base_url=base_url, api_key=api_key, model=model)
    url, key, detail = settings.base_url, settings.api_key, ""
    if settings.provider.name == "local":
        from . import local

        server = local.ensure_server()
        url, key = server.base_url, server.key
        settings.sources["api_key"] = "made for this server at start (never shown)"
    elif settings.provider.name == "replay":
        from . import replay

        server = replay.ensure_server()
        url, detail = server.base_url, server.describe_source()
    conn = Connection(settings.provider, url or "", settings.model, settings.key_source, detail)
    _note(conn)
    return conn, Key(key.reveal() if key else NO_KEY)


def connection_values(provider: str | None = None, *, base_url: str | None = None,
                      api_key: str | None = None, model: str | None = None,
                      show: bool = True) -> tuple[Key, str]:
    """`(api_key, base_url)` for the guide's `openai.OpenAI(api_key=api_key, base_url=base_url)`, from the
    configuration (see `akash_nb.config` for the lookup order).

    In a notebook it shows one banner: provider, URL, model, and where the key came from (never the key).
    Providers that need no key get a placeholder, because the SDK insists on one.
    """
    checks.bool_param("show", show, example="show=False")
    if show:
        from . import render

        render.install_error_display()
    conn, key = _resolve(provider, base_url=base_url, api_key=api_key, model=model)
    if show:
        render.show_connection(conn)
    return key, conn.base_url


def last_latency(openai_client: openai.OpenAI) -> float | None:
    """Seconds the last request of `openai_client` took, for a client made by `client()` (see `Stopwatch`).

    A plain `openai.OpenAI` is not timed: time the call yourself with time.perf_counter()."""
    try:
        return _stopwatches[openai_client].seconds
    except (KeyError, TypeError):  # TypeError: not even an object a client could be (None, a str)
        raise errors.ConfigError("last_latency needs a client made by akash_nb.client(); a plain "
                                 "openai.OpenAI is not timed: time the call with "
                                 "time.perf_counter().") from None


def connection(openai_client: openai.OpenAI) -> Connection:
    """What `openai_client` is connected to: a client made by `client()`, or a plain `openai.OpenAI` whose
    base URL came from `connection_values()` or `client()` in this process."""
    try:
        return _connections[openai_client]
    except (KeyError, TypeError):  # TypeError: not even an object a client could be (a str, a number)
        pass
    found = _by_url.get(_url_key(getattr(openai_client, "base_url", "")))
    if found is None:
        raise errors.ConfigError(
            "akash_nb does not know this client's base URL; build it from "
            "api_key, base_url = akash_nb.connection_values(), then "
            "client = openai.OpenAI(api_key=api_key, base_url=base_url).")
    return found


def timed(openai_client: openai.OpenAI) -> bool:
    """Whether `openai_client` was made by `client()` (and so `last_latency` knows its requests)."""
    try:
        return openai_client in _stopwatches
    except TypeError:  # not even an object a client could be (a str, a number)
        return False


@dataclass(frozen=True)
class ModelChoice:
    requested: str | None
    model: str
    served: tuple[str, ...]
    reason: str

    @property
    def substituted(self) -> bool:
        return self.requested is not None and self.requested != self.model


def served_models(openai_client: openai.OpenAI) -> list[str]:
    """The model ids the provider serves now, from its live /models."""
    conn = connection(openai_client)
    try:
        return sorted(m.id for m in openai_client.models.list())
    except openai.OpenAIError as exc:
        raise conn.explain(exc) from exc


def resolve_model(openai_client: openai.OpenAI, requested: str | None = None) -> ModelChoice:
    """Pick the model to call: the configured one (AKASH_NB_MODEL or client(model=...)), else `requested`
    if it is served, else the provider's documented fallback, else the first served model."""
    conn = connection(openai_client)
    served = tuple(served_models(openai_client))
    if not served:
        raise errors.ConfigError(f"{conn.describe()} lists no models at {conn.base_url}/models.")
    if conn.model is not None:
        if conn.model not in served:
            raise errors.ConfigError(
                f"The configured model {conn.model!r} is not served by {conn.describe()}; "
                f"choose one of: {', '.join(served)}."
            )
        return ModelChoice(requested, conn.model, served, "configured")
    if requested in served:
        return ModelChoice(requested, requested, served, "served")
    for fallback in conn.provider.fallback_models:
        if fallback in served:
            return ModelChoice(requested, fallback, served, "the provider's fallback")
    return ModelChoice(requested, served[0], served, "the first model the provider serves")


def choose_model(openai_client: openai.OpenAI, requested: str | None = None, *, show: bool = True) -> str:
    """The model id to pass as `model=`; shows the substitution when `requested` is not served."""
    checks.text_param("requested", requested, example="choose_model(client, 'SmolLM2-135M-Instruct')",
                      identifier=True, allow_empty=True)
    choice = resolve_model(openai_client, requested)
    if show:
        from . import render

        render.show_model_choice(choice, connection(openai_client))
    return choice.model
