"""`akash-nb doctor`: one screen on every provider — configured? reachable? models? one-token latency.

The embedded model is probed (fetched, built and started if need be) only when the lessons use it: on a
student's laptop pointed at a class server or AkashML its row says what is installed and nothing more."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import openai
from IPython.lib.pretty import PrettyPrinter

from . import _render
from ._clients import client
from ._core import api_key as secret
from ._core import config, parameters, untrusted
from ._core import in_browser as browser
from ._core.connection import connection_for, resolve_model, served_models
from ._core.exceptions import AkashNBError
from ._core.providers import PROVIDERS
from ._engine import builds as engines
from ._engine import weights as models
from ._replay import loopback

DOCTOR_TIMEOUT = 15.0


@dataclass(frozen=True)
class Row:
    provider: str
    configured: str  # where the key/URL came from, or what to set
    reachable: str
    models: str
    latency: str
    ok: bool

    def _repr_pretty_(self, printer: PrettyPrinter, cycle: bool) -> None:
        printer.text(format_table([self]))


def probe(openai_client: openai.OpenAI) -> Row:
    """Check one client made by `akash_nb.client()`: list its models, time a one-token answer."""
    conn = connection_for(openai_client)
    try:
        served = served_models(openai_client)
        model = resolve_model(openai_client).model
        started = time.perf_counter()
        response = openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=1, temperature=0
        )
        seconds = time.perf_counter() - started
    except (AkashNBError, openai.OpenAIError) as error:  # the SDK's raw message would be no sentence
        return Row(
            conn.provider.name, conn.key_source, f"no: {conn.explain(error).sentence}", "-", "-", False
        )
    shown = untrusted.shown_list(served, 3)  # the server's ids: bounded, on one line
    return Row(
        conn.provider.name,
        conn.key_source,
        f"yes, {untrusted.shown(response.model, untrusted.ITEM_LIMIT)} answered",
        shown,
        _render.NOT_MEASURED if conn.provider.name == _render.NOT_TIMED_PROVIDER else f"{seconds:.2f} s",
        True,
    )


class _NoKey(Exception):
    """The doctor never prompts: a missing key is a finding, not a question."""


def _no_prompt(message: str) -> str:
    raise _NoKey


def probe_provider(name: str) -> Row:
    provider = PROVIDERS[
        parameters.choice_param("name", name, PROVIDERS, example="probe_provider('akashml')")
    ]
    try:
        settings = config.resolve(name, prompt=_no_prompt)
    except _NoKey:
        retired = f" (retired on {provider.retired_on}: use akashml)" if provider.retired_on else ""
        return Row(name, f"no: set {provider.key_env[0]}{retired}", "-", "-", "-", False)
    except AkashNBError as error:
        return Row(name, f"no: {error.sentence}", "-", "-", "-", False)
    try:
        made = client(
            name,
            api_key=settings.api_key.reveal() if settings.api_key else None,
            timeout=DOCTOR_TIMEOUT,
            max_retries=0,
            show=False,
        )
    except AkashNBError as error:
        return Row(name, settings.key_source, f"no: {error.sentence}", "-", "-", False)
    row = probe(made)
    if settings.api_key is not None:  # the key was passed on as an argument: say where it really came from
        row = dataclasses.replace(row, configured=settings.key_source)
    return row


def configured_provider() -> str | None:
    """The provider the lessons would use now (the lookup order of `akash_nb._core.config`), or None when the
    configuration itself is broken."""
    try:
        return config.resolve(prompt=_no_prompt).provider.name
    except _NoKey:
        return None
    except AkashNBError:
        return None


def verdict(rows: list[Row], configured: str | None) -> str:
    """One line under the table: whether the provider the lessons use works, and where it was chosen."""
    if configured is None:
        return "The configuration is broken (see the rows above): the lessons cannot run until it is fixed."
    try:
        source = config.resolve(prompt=_no_prompt).sources.get("provider", "")
    except (AkashNBError, _NoKey):
        source = ""
    row = next((r for r in rows if r.provider == configured), None)
    state = "works" if row is not None and row.ok else "FAILS"
    return f"The lessons use {configured} ({source}): it {state}."


def starts_the_embedded_model(name: str) -> bool:
    """Whether probing provider `name` would fetch, build or start the embedded model: `local` itself, and
    `replay` when it records from it (AKASH_NB_REPLAY_MODE=record with the default upstream)."""
    if name == "local":
        return True
    if name != "replay":
        return False
    try:
        return loopback.resolve_mode() != "replay" and loopback.upstream_spec().lower() == "local"
    except AkashNBError:
        return False


def installed_embedded_model() -> str:
    """What of the embedded model this Python has, found without fetching, building or starting anything."""
    try:
        found, weights = engines.find(), models.find()
    except AkashNBError as error:
        return f"no: {error.sentence}"
    if found is None and weights is None:
        return "not installed (student set)" if engines.student_set() else "engine and model not fetched yet"
    if found is None:
        return "model file here; no engine"
    if weights is None:
        return "engine here; model file not fetched"
    return "installed, not started"


def not_checked(name: str, configured: str | None) -> Row:
    """The row of a provider whose probe would fetch, build or start the embedded model the lessons do not
    use."""
    why = f"the lessons use {configured}" if configured else "the configuration is broken"
    configured_cell = installed_embedded_model() if name == "local" else "records from the embedded model"
    return Row(name, configured_cell, f"not checked: {why}", "-", "-", False)


def probe_all(configured: str | None = None) -> list[Row]:
    """Every provider's row; one whose probe would start the embedded model only when the lessons use it
    (`configured`, the provider they use: `configured_provider()`)."""
    browser.refuse("akash-nb doctor (it starts the embedded model and probes servers from this machine)")
    return [
        not_checked(name, configured)
        if configured != name and starts_the_embedded_model(name)
        else probe_provider(name)
        for name in PROVIDERS
        if name != "browser"  # answered only inside the lessons' web site, never from this machine
    ]


WIDEST = 60  # characters a column may take on one screen


def _fit(cell: str, width: int) -> str:
    return cell.ljust(width) if len(cell) <= width else cell[: width - 1] + "…"


def format_table(rows: list[Row]) -> str:
    return secret.mask(_format_table(rows))


def _format_table(rows: list[Row]) -> str:
    headers = ("provider", "configured", "reachable", "models", "1-token latency")
    table = [headers] + [(r.provider, r.configured, r.reachable, r.models, r.latency) for r in rows]
    widths = [min(max(len(row[i]) for row in table), WIDEST) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [_fit(cell, width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    # A cell cut to fit is given in full below the table: the fix is usually at its end.
    full = [
        f"{r.provider}: {cell}" for r in rows for cell in (r.configured, r.reachable) if len(cell) > WIDEST
    ]
    return "\n".join([*lines, "", *full] if full else lines)
