"""A student's way in to a class server (`akash-nb join URL KEY`): check that it answers with the key, then
write the `.env` lines the teacher's screen shows (akash_nb._engine.class_server is the teacher's side)."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from urllib.parse import urlparse

from dotenv import set_key

from .._core import config, files, masking, untrusted
from .._core import in_browser as browser
from .._core.exceptions import ConfigError, config_error, file_error, input_error
from .llama_server import list_models

JOIN_TIMEOUT = 10.0


def env_settings(url: str, key: str) -> dict[str, str]:
    """What a student's .env sets to use a class server; the provider makes it win over an AkashML key,
    and AKASH_NB_CLASS_SERVER names it "class server" in banners and footers (config.CLASS_SERVER)."""
    return {
        "AKASH_NB_PROVIDER": "openai-compatible",
        "AKASH_NB_BASE_URL": url,
        "AKASH_NB_API_KEY": key,
        config.CLASS_SERVER: url,
    }


def class_url(text: str) -> str:
    """The class server's API URL from what a student typed: `10.0.0.5:8080` means http://10.0.0.5:8080/v1."""
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or any(c.isspace() for c in raw):
        raise config_error("join-not-an-address", url=untrusted.shown_url(text))
    if untrusted.has_user_info(raw):
        raise input_error(
            "url-credentials", ConfigError, url=untrusted.shown_url(raw), where="the URL you gave"
        )
    return raw.rstrip("/") if parsed.path.rstrip("/") else raw.rstrip("/") + "/v1"


def served_models(url: str, key: str, timeout: float = JOIN_TIMEOUT) -> list[str]:
    """The models a class server serves, asked with `key`; a ConfigError sentence when it does not answer."""
    try:
        return list_models(url, key, timeout)
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise config_error("join-key-refused", url=untrusted.shown_url(url)) from None
        raise config_error("join-status", url=untrusted.shown_url(url), status=error.code) from None
    except (urllib.error.URLError, OSError) as error:
        reason = untrusted.shown(getattr(error, "reason", error), 200)
        raise config_error("join-unreachable", url=untrusted.shown_url(url), reason=reason) from None
    except ValueError:
        raise config_error("join-not-class-server", url=untrusted.shown_url(url)) from None


def join(url: str, key: str, env_file: Path | None = None) -> str:
    """Check the class server at `url` answers with `key`, then write its `.env` lines into `env_file`
    (default: `.env` in the working directory), keeping every other line there. Returns the one sentence
    to show. The key is written to the file (mode 0600) and never shown."""
    browser.refuse("akash-nb join (it writes .env beside a local JupyterLab)")
    target = Path(".env") if env_file is None else env_file
    api = class_url(url)
    clean, _ = config.clean_key(key, "the KEY you gave")
    masking.remember(clean)  # a server that echoes it (whole, or as "...last4") cannot show it
    fix = "give --env a file you can write, in a folder you can write. Nothing was written"
    try:  # a FIFO, a device, a folder or a loop there is refused before the server is asked
        files.check_writable_target(target)
    except OSError as error:
        raise file_error(target, "The .env file", error, fix, writing=True) from error
    served = served_models(api, clean)
    settings = env_settings(api, clean)
    try:
        if not target.exists():
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        for name, value in settings.items():
            set_key(target, name, value, quote_mode="never")
        target.chmod(0o600)
    except OSError as error:  # a read-only filesystem, no permission, a file where its folder belongs
        raise file_error(target, "The .env file", error, fix, writing=True) from error
    # The environment wins over .env, setting by setting (akash_nb/_core/config.py): say so if it would here.
    winners = [
        name for name, value in settings.items() if os.environ.get(name, "").strip() not in ("", value)
    ]
    if winners:
        return (
            f"Wrote {target}, but environment variable {winners[0]} wins over it; unset it (or start a "
            "new terminal without it), then run `make lab`."
        )
    return (
        f"Connected to the class server at {untrusted.shown_url(api)} "
        f"({untrusted.shown_list(served) or 'no model listed'}); wrote "
        f"{target}, so `make lab` and every lesson use it."
    )
