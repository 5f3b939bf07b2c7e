"""What a client is connected to, with no display: `Connection`, the registries of clients and base URLs
handed out, `connection_for(client)`, `last_latency()`, and honest model choice (`resolve_model()` reads
the provider's live `/models`)."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

import openai

from . import exceptions, masking, untrusted
from . import failures as errors
from .exceptions import ConfigError, config_error
from .providers import Provider

# The provider of a client akash_nb did not make and was not given the URL of: named by its URL alone.
UNKNOWN = Provider(
    name="",
    title="the provider",
    base_url=None,
    key_env=(),
    key_prefix=None,
    fallback_models=(),
    needs_key=False,
    note="A client akash_nb has not seen.",
)


@dataclass(frozen=True)
class Connection:
    """What a client is connected to. Holds no key."""

    provider: Provider
    base_url: str
    model: str | None  # the configured model, if any
    key_source: str
    detail: str = ""  # e.g. which provider a replay's recordings came from
    shown_as: str = ""  # a name that says more than the provider's: "class server" (config.CLASS_SERVER)

    @property
    def name(self) -> str:
        """Who answers, for banners and footers: "class server" for a joined class server, else the
        provider's name."""
        return self.shown_as or self.provider.name

    @property
    def label(self) -> str:
        """Who answers, for a footer: `name`, or the URL of a client akash_nb has not seen."""
        return self.name or untrusted.shown_url(self.base_url)

    def describe(self) -> str:
        if self.shown_as:
            return f"the {self.shown_as} your teacher shares (joined with `akash-nb join`)"
        return self.provider.title + (f" ({self.detail})" if self.detail else "")

    def explain(self, error: BaseException, *, streaming: bool | None = None) -> exceptions.AkashNBError:
        """The one-sentence error for a failure talking to this provider (see `errors.explain`)."""
        return errors.explain(error, self, streaming=streaming)


class Stopwatch:
    """Times each HTTP request a client sends, from sending it to the response's headers: for an answer
    that is not streamed, the whole answer. For a stream it is only the wait for the headers, which a server
    may send before the model has written anything: it is not the first token (time that at the first
    chunk, as lesson 05 does). Kept out of the lesson's own call, so the guide's code stays as the guide
    wrote it."""

    def __init__(self) -> None:
        self._started: float | None = None
        self.seconds: float | None = None  # the last request's

    def on_request(self, request: object) -> None:
        self._started = time.perf_counter()

    def on_response(self, response: object) -> None:
        if self._started is not None:
            self.seconds = time.perf_counter() - self._started


# Clients made by akash_nb.client() -> their connection and stopwatch (forgotten with the client).
_by_client: weakref.WeakKeyDictionary[openai.OpenAI, tuple[Connection, Stopwatch]] = (
    weakref.WeakKeyDictionary()
)
# Every base URL handed out in this process -> its connection: how a plain openai.OpenAI is recognised.
_by_url: dict[str, Connection] = {}


def _url_key(url: object) -> str:
    return str(url).rstrip("/")


def note(conn: Connection) -> None:
    """Remember `conn` by its base URL (a plain `openai.OpenAI` built from it is then recognised)."""
    if conn.base_url:
        _by_url[_url_key(conn.base_url)] = conn


def attach(openai_client: openai.OpenAI, conn: Connection, stopwatch: Stopwatch) -> None:
    """Remember the connection and stopwatch of a client made by `akash_nb.client()`."""
    _by_client[openai_client] = (conn, stopwatch)


def connection_for_url(url: object) -> Connection | None:
    """The connection whose base URL `url` is, or lies under (a request's URL): the longest such base URL,
    so that of several providers on one host the right one is named. None when no connection has it."""
    wanted = _url_key(url)
    matches = [conn for key, conn in _by_url.items() if wanted == key or wanted.startswith(key + "/")]
    return max(matches, key=lambda conn: len(conn.base_url), default=None)


def connection_for(openai_client: openai.OpenAI) -> Connection:
    """What `openai_client` is connected to: a client made by `client()`, or a plain `openai.OpenAI` whose
    base URL came from `connection_values()` or `client()` in this process."""
    # A client made with a key akash_nb never saw (a plain openai.OpenAI): its key is masked from now on.
    masking.remember(getattr(openai_client, "api_key", None))  # type: ignore[arg-type]
    try:
        return _by_client[openai_client][0]
    except (KeyError, TypeError):  # TypeError: not even an object a client could be (a str, a number)
        pass
    found = _by_url.get(_url_key(getattr(openai_client, "base_url", "")))
    if found is None:
        raise config_error("client-unknown")
    return found


def connection_or_unknown(openai_client: openai.OpenAI) -> Connection:
    """`connection_for(openai_client)`, or, for an `openai.OpenAI` akash_nb has not seen (which
    `Conversation` and `ChatBox` accept too), a stand-in naming only its URL."""
    try:
        return connection_for(openai_client)
    except ConfigError:
        url = _url_key(getattr(openai_client, "base_url", ""))
        return Connection(UNKNOWN, url, None, "not known to akash_nb")


def timed(openai_client: openai.OpenAI) -> bool:
    """Whether `openai_client` was made by `client()` (and so `last_latency` knows its requests)."""
    try:
        return openai_client in _by_client
    except TypeError:  # not even an object a client could be (a str, a number)
        return False


def last_latency(openai_client: openai.OpenAI) -> float | None:
    """Seconds the last request of `openai_client` took, for a client made by `client()` (see `Stopwatch`).

    A plain `openai.OpenAI` is not timed: time the call yourself with time.perf_counter()."""
    try:
        return _by_client[openai_client][1].seconds
    except (KeyError, TypeError):  # TypeError: not even an object a client could be (None, a str)
        raise config_error("latency-plain-client") from None


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
    conn = connection_for(openai_client)
    try:
        page = openai_client.models.list()
        # The SDK builds the list without checking it: an entry may be anything the server sent.
        # An id that holds the key (a server echoing it) is masked: it is shown, and returned to be shown.
        return sorted(masking.mask(m.id) for m in page if isinstance(getattr(m, "id", None), str) and m.id)
    except openai.OpenAIError as exc:
        raise conn.explain(exc) from exc
    except (TypeError, AttributeError):  # "data" is not a list of objects (null, a number, a string)
        raise errors.shape_error("no-model-list", conn) from None


def resolve_model(openai_client: openai.OpenAI, requested: str | None = None) -> ModelChoice:
    """Pick the model to call: the configured one (AKASH_NB_MODEL or client(model=...)), else `requested`
    if it is served, else the provider's documented fallback, else the first served model."""
    conn = connection_for(openai_client)
    served = tuple(served_models(openai_client))
    if not served:
        raise config_error("no-models-listed", where=conn.describe(), url=untrusted.shown_url(conn.base_url))
    if conn.model is not None:
        if conn.model not in served:
            raise config_error(
                "model-not-served",
                model=repr(conn.model),
                where=conn.describe(),
                served=untrusted.shown_list(served),
            )
        return ModelChoice(requested, conn.model, served, "configured")
    if requested in served:
        return ModelChoice(requested, requested, served, "served")
    for fallback in conn.provider.fallback_models:
        if fallback in served:
            return ModelChoice(requested, fallback, served, "the provider's fallback")
    return ModelChoice(requested, served[0], served, "the first model the provider serves")
