"""The routes a browser tab answers itself (Pyodide), with no network and no server:

- `http://in-browser.localhost/v1`: the in-browser model, through the site's bridge.js (wllama in the
  kernel's worker);
- `http://replay.localhost/v1`: the committed recordings, answered here in Python by the same code as the
  loopback replay server (`cassettes.Recordings.answer`).

Every other URL goes through the browser's fetch (the `httpx2_jsfetch` transport). `install()`, run by
`import akash_nb` under Pyodide, registers both with that transport.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
from IPython import get_ipython

from .._core import in_browser as browser
from .._core.exceptions import config_error
from . import cassettes

if TYPE_CHECKING:
    from httpx2_jsfetch import Call, Reply


# --- replay, answered in this tab -----------------------------------------------------------------------

_recordings: dict[Path, cassettes.Recordings] = {}


def recordings_folder() -> Path:
    """The recordings a tab replays: AKASH_NB_RECORDINGS when set, else the folder of the
    `akash_nb_recordings` package the site ships (it holds the *.json of recordings/)."""
    if os.environ.get(cassettes.FOLDER_ENV, "").strip():
        return cassettes.recordings_folder()
    import akash_nb_recordings  # built by the site tool from recordings/: only the site has it

    return Path(akash_nb_recordings.__file__).parent


def recordings() -> cassettes.Recordings:
    """This tab's replay of `recordings_folder()` (one per folder: repeats are counted as the server's)."""
    folder = recordings_folder()
    if not folder.is_dir():
        raise config_error("tab-recordings-missing", folder=folder, variable=cassettes.FOLDER_ENV)
    if folder not in _recordings:
        _recordings[folder] = cassettes.Recordings(folder)
    return _recordings[folder]


def replay_detail() -> str:
    """What the banner says of replay in a tab: where the recordings came from, and who answers."""
    return f"{cassettes.describe_recordings(recordings_folder())}; {browser.REPLAY_SHOWN}"


def replay_reply(call: Call) -> Reply:
    """Replay's answer to one request, as the loopback replay server would send it (`cassettes.Answer`)."""
    from httpx2_jsfetch import Reply  # only the site has it (browser/httpx2_jsfetch)

    sent_key = call.headers.get("authorization", "")
    other_key = bool(sent_key) and sent_key != f"Bearer {cassettes.HANDED_OUT_KEY}"
    found = recordings().answer(call.method, call.path, call.body, other_key=other_key, timeout=call.timeout)
    assert isinstance(found, cassettes.Answer)  # replay mode: every request gets an answer, a miss included
    if found.wait:
        # The recorded answer outlasted this request's timeout: the client's timeout fires, as it did.
        raise httpx2.ReadTimeout(f"{call.url} did not answer within {call.timeout:g} seconds.")
    return Reply(found.status, found.headers(), list(found.chunks()))


async def replay_reply_async(call: Call) -> Reply:
    return replay_reply(call)


# --- the in-browser model, answered by bridge.js --------------------------------------------------------

_bridge: Any = None


def _headers(call: Call) -> Any:
    import js  # only Pyodide has these
    from pyodide.ffi import to_js  # only Pyodide has it

    return to_js(call.headers, dict_converter=js.Object.fromEntries)


def _body(call: Call) -> str | None:
    return call.body.decode("utf-8") if call.body else None


def model_reply(call: Call) -> Any:
    """bridge.js's Response to one request, waited for through JSPI (the sync client)."""
    from pyodide.code import run_js  # only Pyodide has these
    from pyodide.ffi import can_run_sync, run_sync  # only Pyodide has it

    global _bridge
    if not can_run_sync():
        raise httpx2.ConnectError(browser.tab_sentence("no-jspi"))
    if _bridge is None:
        _bridge = run_sync(run_js(f"import({browser.bridge_url()!r})"))
    return run_sync(_bridge.handle(call.method, call.url, _headers(call), _body(call)))


async def model_reply_async(call: Call) -> Any:
    """bridge.js's Response to one request, awaited (the async client)."""
    from pyodide.code import run_js  # only Pyodide has it

    global _bridge
    if _bridge is None:
        _bridge = await run_js(f"import({browser.bridge_url()!r})")
    return await _bridge.handle(call.method, call.url, _headers(call), _body(call))


def warm_up() -> None:
    """Start loading the in-browser model now, in JavaScript, without waiting for it: the first request
    then waits only for what is left of the load (bridge.js keeps the one load in flight). Nothing outside
    Pyodide; a failed load is the first request's sentence (bridge.js answers 503 with it)."""
    if not browser.IN_BROWSER:
        return
    from pyodide.code import run_js  # only Pyodide has it

    run_js(f"import({browser.bridge_url()!r}).then((bridge) => bridge.load()).catch(() => null)")


def install() -> None:
    """Under Pyodide: answer the tab's two origins with the transport, and (in IPython) watch each cell for
    what a tab cannot start (`browser.CellGuard`). Run by `import akash_nb`."""
    if not browser.IN_BROWSER:
        return
    import httpx2_jsfetch  # only the site has it (browser/httpx2_jsfetch)

    httpx2_jsfetch.answer(browser.REPLAY_ORIGIN, replay_reply, replay_reply_async)
    httpx2_jsfetch.answer(browser.MODEL_ORIGIN, model_reply, model_reply_async)
    shell = get_ipython()
    if shell is not None:
        browser.guard_cells(shell)
