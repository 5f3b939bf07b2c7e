"""What went wrong, in one sentence a learner can act on.

One table maps an HTTP status (or a kind of transport failure) to the sentence shown and to whether the
request is worth retrying. `explain()` is the only place that turns an exception into words; notebooks show
its sentence instead of a traceback (see `install_notebook_handler`), and the original exception stays
reachable as `__cause__` / `.original`.
"""

from __future__ import annotations

from dataclasses import dataclass

import openai

from .providers import RETIRED_ON


class AkashNBError(Exception):
    """An error whose message is already the one sentence to show the user."""

    def __init__(self, sentence: str, *, original: BaseException | None = None, retried: bool = False):
        super().__init__(sentence)
        self.sentence = sentence
        self.original = original
        self.retried = retried


class ConfigError(AkashNBError, ValueError):
    """The configuration (provider, URL, key, model) cannot work as given."""


class LocalServerError(AkashNBError, RuntimeError):
    """The embedded model server could not be started or reached."""


class NoRecordingError(AkashNBError, LookupError):
    """Replay was asked for a request that was never recorded."""


@dataclass(frozen=True)
class Failure:
    sentence: str  # may use {provider} and {detail}
    retry: bool  # worth retrying with backoff (Retry-After honoured by the SDK)


# HTTP status -> what the user sees. {provider} is the provider's title.
STATUS: dict[int, Failure] = {
    400: Failure("{provider} rejected the request as malformed: {detail}", False),
    401: Failure("{provider} did not accept the key (401): check the key, or create a new one.", False),
    402: Failure("{provider} answered 402: this key has no credits left; add credits or switch to the "
                 "local provider (unset AKASH_NB_PROVIDER).", False),
    403: Failure("{provider} refused this key access (403): the key may lack permission for this model.",
                 False),
    404: Failure("{provider} does not serve this (404): {detail} Pick a model from client.models.list().",
                 False),
    408: Failure("{provider} timed out waiting for the request (408); try again.", True),
    410: Failure("{provider} says this is gone (410): {detail}", False),
    413: Failure("{provider} says the request is too large (413): shorten the prompt or the history.", False),
    422: Failure("{provider} could not process the request (422): {detail}", False),
    429: Failure("{provider} is rate-limiting this key (429); wait a moment (Retry-After is honoured) "
                 "or send fewer requests at once.", True),
    500: Failure("{provider} had an internal error (500); try again in a moment.", True),
    502: Failure("{provider}'s gateway got a bad answer from the model (502); try again in a moment.", True),
    503: Failure("{provider} is unavailable right now (503); try again in a moment.", True),
    504: Failure("{provider} found no free model backend in time (504); try again, or use a smaller "
                 "model.", True),
    529: Failure("{provider} is overloaded (529); try again in a moment, or switch provider.", True),
}

# Failures with no HTTP status.
TRANSPORT: dict[str, Failure] = {
    "timeout": Failure("{provider} did not answer in time; check the connection, or raise the timeout: "
                       "akash_nb.client(timeout=...).", True),
    "connection": Failure("Could not reach {provider} at {detail}; check the URL and that the server is "
                          "running (akash-nb doctor checks every provider).", True),
    "retired": Failure("The Akash Chat API (chatapi.akash.network) was retired on " + RETIRED_ON + "; "
                       "move to AkashML: create a key at akashml.com, set AKASHML_API_KEY, and unset "
                       "AKASH_NB_PROVIDER (or set it to akashml).", False),
    "bad-response": Failure("{provider} sent an answer that is not valid JSON or SSE: {detail}", False),
}


def _detail(error: openai.APIStatusError) -> str:
    """The server's own message, from the usual body shapes ({"error": {"message"}}, {"detail"}, ...)."""
    body = error.body
    message = None
    if isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else inner
        message = message or body.get("message") or body.get("detail")
    text = str(message or error.message).strip().rstrip(".")
    return text + "." if text else ""


def _error_type(error: openai.APIStatusError) -> str | None:
    body = error.body
    inner = body.get("error") if isinstance(body, dict) else None
    return inner.get("type") if isinstance(inner, dict) else None


def explain(error: BaseException, provider_title: str, *, provider_name: str = "", url: str = "") -> AkashNBError:
    """The AkashNBError (with its one sentence) for an exception raised while talking to a provider."""
    if isinstance(error, AkashNBError):
        return error
    if isinstance(error, openai.APIStatusError) and _error_type(error) == "no_recording":
        # The replay server's miss: its message already says what was asked and how to record it.
        return NoRecordingError(_detail(error), original=error)
    if provider_name == "akash-chat" and isinstance(error, openai.APIConnectionError | openai.NotFoundError):
        failure, detail = TRANSPORT["retired"], ""
    elif isinstance(error, openai.APIStatusError):
        failure = STATUS.get(error.status_code) or Failure(
            f"{{provider}} answered HTTP {error.status_code}: {{detail}}", error.status_code >= 500
        )
        detail = _detail(error)
    elif isinstance(error, openai.APITimeoutError):
        failure, detail = TRANSPORT["timeout"], ""
    elif isinstance(error, openai.APIConnectionError):
        failure, detail = TRANSPORT["connection"], url or "its URL"
    elif isinstance(error, openai.APIResponseValidationError | ValueError):
        failure, detail = TRANSPORT["bad-response"], str(error)
    else:
        return AkashNBError(f"{provider_title}: {type(error).__name__}: {error}", original=error)
    sentence = failure.sentence.format(provider=provider_title, detail=detail).replace(" .", ".")
    return AkashNBError(sentence, original=error, retried=failure.retry)
