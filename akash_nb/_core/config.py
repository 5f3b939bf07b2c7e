"""Where the provider, base URL, key and model come from: for each setting, in this order, the arguments,
the environment, a `.env` file, a masked prompt, then the embedded model (details in docs/architecture.md).
The result says where each value came from, never the key itself."""

from __future__ import annotations

import getpass
import io
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values, find_dotenv
from IPython import get_ipython
from IPython.core.error import StdinNotImplementedError

from . import files, parameters, providers, untrusted
from .api_key import Secret
from .exceptions import ConfigError, config_error, file_error, input_error
from .in_browser import IN_BROWSER
from .providers import Provider

VARIABLES = (
    "AKASH_NB_PROVIDER",
    "AKASH_NB_BASE_URL",
    "AKASH_NB_API_KEY",
    "AKASH_NB_MODEL",
    "AKASHML_API_KEY",
    "AKASH_API_KEY",
    "AKASH_NB_CLASS_SERVER",
)
# `akash-nb join` writes the class server's URL here too: a connection to that very URL is shown as the
# "class server" (akash_nb._core.connection.Connection.name), not as "your OpenAI-compatible server".
CLASS_SERVER = "AKASH_NB_CLASS_SERVER"


@dataclass(frozen=True)
class Settings:
    provider: Provider
    base_url: str | None
    api_key: Secret | None
    model: str | None  # None: let the provider's served models decide
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where it came from (never a value)
    class_server: bool = False  # base_url is the class server `akash-nb join` wrote (CLASS_SERVER)

    @property
    def key_source(self) -> str:
        return self.sources.get("api_key", "none")


# The argument of `resolve()` that stands for each variable, to say "the base_url= argument".
ARGUMENTS = {
    "AKASH_NB_PROVIDER": "provider",
    "AKASH_NB_BASE_URL": "base_url",
    "AKASH_NB_MODEL": "model",
}

# Which provider a setting points at when no provider is named, in the order they are tried in each layer.
INFERENCE = (
    ("AKASH_NB_BASE_URL", "openai-compatible"),
    ("AKASHML_API_KEY", "akashml"),
    ("AKASH_API_KEY", "akash-chat"),
)


@dataclass(frozen=True)
class _Lookup:
    """One layered view: explicit arguments, then environment, then .env."""

    layers: tuple[tuple[str, Mapping[str, str | None]], ...]

    def get(self, name: str) -> tuple[str | None, str]:
        for label, values in self.layers:
            value = values.get(name)
            if value is not None and value.strip() != "":
                return value, label.format(name=name, argument=ARGUMENTS.get(name, name))
        return None, "unset"


def dotenv_file(start: Path | None = None) -> Path | None:
    """The nearest `.env` from `start` (default: the working directory) upward, if any."""
    if start is not None:
        for folder in (start, *start.parents):
            if (folder / ".env").is_file():
                return folder / ".env"
        return None
    found = find_dotenv(usecwd=True)
    return Path(found) if found else None


# Characters a copy from a web page or a Windows editor slips into a key without showing them: a BOM and
# the zero-width ones. They are removed (the banner says so); any other character no key has is an error.
INVISIBLE = {
    "\ufeff": "BOM",
    "\u200b": "zero-width space",
    "\u200c": "zero-width non-joiner",
    "\u200d": "zero-width joiner",
    "\u2060": "word joiner",
    "\u00ad": "soft hyphen",
}


DOTENV_LIMIT = 64 * 1024  # bytes; a .env holds a handful of NAME=value lines


def read_dotenv(path: Path) -> dict[str, str | None]:
    """The variables in the `.env` file at `path` (never loaded into the environment); a FileError naming
    the file and the fix when it cannot be read (a folder, binary bytes, no permission)."""
    fix = "fix it (one NAME=value a line) or delete it"
    if not os.path.lexists(path):  # a dotenv_path= that is not there: no .env, as python-dotenv reads it
        return {}
    try:
        raw = files.read_bytes(path, DOTENV_LIMIT)  # a FIFO or /dev/zero refused before it is opened
        text = raw.decode("utf-8") if len(raw) <= DOTENV_LIMIT else None
    except (OSError, UnicodeDecodeError) as error:
        raise file_error(path, "The .env file", error, fix) from error
    if text is None:  # python-dotenv takes minutes on a megabyte: no settings file is that long
        raise file_error(
            path,
            "The .env file",
            f"it is over {DOTENV_LIMIT // 1024} KB, where a .env holds a few settings",
            fix,
        )
    return dotenv_values(stream=io.StringIO(text))  # parsed from what was read: the file is read once


def clean_key(raw: str, where: str) -> tuple[str, str]:
    """Strip the usual `.env` mistakes (spaces, newlines, quotes around the key, a BOM or zero-width
    characters anywhere in it) and say so in the note; refuse a character no key holds.

    Keys are printable ASCII (every provider's are); anything else would fail as a UnicodeEncodeError in
    the HTTP header of every request, far from its cause."""
    invisible = sorted({INVISIBLE[c] for c in raw if c in INVISIBLE})
    key = "".join(c for c in raw if c not in INVISIBLE).strip()
    note = " (surrounding spaces removed)" if key != raw and not invisible else ""
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        key = key[1:-1].strip()
        note = " (surrounding quotes removed)"
    if invisible:
        note += f" (invisible characters removed: {', '.join(invisible)})"
    if not key:
        raise config_error("key-empty", where=where)
    if any(c.isspace() for c in key):
        raise config_error("key-spaces", where=where)
    odd = next((c for c in key if not (c.isascii() and c.isprintable())), None)
    if odd is not None:
        char = parameters.bad_character(odd) or f"U+{ord(odd):04X} ({odd})"
        raise input_error("key-characters", ConfigError, where=where, char=char)
    return key, note


def can_prompt() -> bool:
    """Whether a person may be there to answer: never under CI; in IPython (a kernel whose front end
    cannot answer refuses the prompt itself, see `_getpass`) or at a terminal."""
    if os.environ.get("CI"):
        return False
    return get_ipython() is not None or (sys.stdin is not None and sys.stdin.isatty())


def _check_url(url: str, where: str) -> str:
    text = "".join(c for c in url if c not in INVISIBLE).strip()
    try:
        parsed = urlparse(text)
        parsed.port  # noqa: B018 — raises ValueError for a port that is not a number
    except ValueError:
        parsed = urlparse("")
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.netloc
        or any(c.isspace() for c in text)
        or parameters.bad_character(text)
        or not parsed.hostname
    ):
        raise config_error("url-not-http", url=untrusted.shown_url(text), where=where)
    if untrusted.has_user_info(text):  # httpx2 would send it as Basic auth, in place of the Bearer key
        raise input_error("url-credentials", ConfigError, url=untrusted.shown_url(text), where=where)
    return text.rstrip("/")


def _infer_provider(look: _Lookup, api_key: str | None) -> tuple[str, str]:
    """Which provider the configuration points at when none is named (see docs/architecture.md)."""
    for index, (label, values) in enumerate(look.layers):
        for variable, name in INFERENCE:
            value = values.get(variable)
            if value is not None and value.strip() != "":
                return name, "inferred from " + label.format(name=variable, argument=ARGUMENTS.get(variable))
        owner = providers.owner_of_key(api_key.strip().strip("'\"")) if index == 0 and api_key else None
        if owner is not None:
            return owner.name, f"inferred from the api_key= argument (it starts with {owner.key_prefix})"
    if api_key:
        raise config_error("key-no-provider")
    # In a browser tab nothing can start the embedded engine: the in-browser model is the default there.
    return ("browser" if IN_BROWSER else "local"), "default (no provider configured)"


def resolve(
    provider: str | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
    prompt: Callable[[str], str] | None = None,
) -> Settings:
    """Resolve the settings in the order given in docs/architecture.md (config).

    `environ`, `dotenv_path` and `prompt` exist for tests; by default they are the process environment,
    the nearest `.env`, and a masked `getpass` prompt when `can_prompt()`.
    """
    parameters.text_param(
        "provider", provider, example="provider='akashml'", identifier=True, allow_empty=True
    )
    parameters.text_param(
        "base_url", base_url, example="base_url='http://my-server:8000/v1'", identifier=True, allow_empty=True
    )
    parameters.text_param(
        "api_key", api_key, example="api_key='akml-...' (better: AKASHML_API_KEY in .env)", allow_empty=True
    )
    parameters.text_param(
        "model", model, example="model='Meta-Llama-3-1-8B-Instruct-FP8'", identifier=True, allow_empty=True
    )
    env = os.environ if environ is None else environ
    env_file = dotenv_path if dotenv_path is not None else dotenv_file()
    file_values = read_dotenv(env_file) if env_file else {}
    explicit = {
        "AKASH_NB_PROVIDER": provider,
        "AKASH_NB_BASE_URL": base_url,
        "AKASH_NB_MODEL": model,
    }
    look = _Lookup(
        (
            ("the {argument}= argument", explicit),
            ("environment variable {name}", env),
            (f"{{name}} in {env_file}" if env_file else "", file_values),
        )
    )
    sources: dict[str, str] = {}

    name, sources["provider"] = look.get("AKASH_NB_PROVIDER")
    if name is None:
        name, sources["provider"] = _infer_provider(look, api_key)
    try:
        chosen = providers.get(name.strip().lower())
    except ValueError:
        raise config_error(
            "unknown-provider",
            name=repr(name.strip()),
            where=sources["provider"],
            providers=", ".join(providers.PROVIDERS),
        ) from None

    url, sources["base_url"] = _resolve_url(chosen, look, base_url)
    key = _resolve_key(chosen, api_key, look, env, prompt, sources)

    marked, _ = look.get(CLASS_SERVER)
    joined = chosen.name == "openai-compatible" and url is not None and marked is not None
    class_server = joined and marked.strip().rstrip("/") == url.rstrip("/")  # type: ignore[union-attr]
    requested, sources["model"] = look.get("AKASH_NB_MODEL")
    if requested is None:
        sources["model"] = "chosen from the provider's served models"
    return Settings(
        provider=chosen,
        base_url=url,
        api_key=key,
        model=requested.strip() if requested else None,
        sources=sources,
        class_server=class_server,
    )


def _resolve_url(chosen: Provider, look: _Lookup, argument: str | None) -> tuple[str | None, str]:
    raw_url, where = look.get("AKASH_NB_BASE_URL")
    if chosen.started_here:
        ignored = f" ({where} is ignored: this provider runs its own server)" if raw_url else ""
        return None, "started on demand" + ignored
    if chosen.base_url is None:  # openai-compatible: the URL is the whole point
        if raw_url is None:
            raise config_error("provider-needs-url", name=chosen.name)
        return _check_url(raw_url, where), where
    if argument is not None and argument.strip():
        return _check_url(argument, where), where
    # AKASH_NB_BASE_URL belongs to openai-compatible: a provider's key never goes to a URL set for another.
    ignored = f" ({where} is ignored: it is for the openai-compatible provider)" if raw_url else ""
    return chosen.base_url, "provider default" + ignored


def _resolve_key(
    chosen: Provider,
    explicit: str | None,
    look: _Lookup,
    env: Mapping[str, str],
    prompt: Callable[[str], str] | None,
    sources: dict[str, str],
) -> Secret | None:
    raw, where = (explicit, "the api_key= argument") if explicit is not None else (None, "unset")
    for variable in chosen.key_env:
        if raw is None:
            raw, where = look.get(variable)
    typed = False
    if raw is None and chosen.needs_key:
        variable = chosen.key_env[0]
        ask = prompt if prompt is not None else (_getpass if can_prompt() else None)
        # None from the prompt: the front end could not answer (nbconvert, nbval, a headless kernel)
        raw = ask(f"{chosen.title} key ({variable}): ") if ask is not None else None
        if raw is None:
            raise config_error("key-missing", title=chosen.title, variable=variable)
        where, typed = "typed at the prompt", True
    if raw is None:
        sources["api_key"] = "none needed" if not chosen.needs_key else "unset"
        return None
    key, note = clean_key(raw, where)
    _check_key_shape(chosen, key, where)
    if typed and env is os.environ:
        os.environ[chosen.key_env[0]] = key  # asked once per process
    sources["api_key"] = where + note
    return Secret(key)


def _check_key_shape(chosen: Provider, key: str, where: str) -> None:
    if chosen.key_prefix is None or key.startswith(chosen.key_prefix):
        return
    owner = providers.owner_of_key(key)
    shape = {"where": where, "prefix": chosen.key_prefix, "title": chosen.title}
    if owner is not None:
        raise config_error("key-other-provider", owner=owner.name, **shape)
    raise config_error("key-own-server", **shape)


def _getpass(message: str) -> str | None:
    """A masked prompt; None when the Jupyter front end cannot answer one (IPython's own signal)."""
    try:
        return getpass.getpass(message)
    except StdinNotImplementedError:
        return None
