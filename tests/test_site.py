"""The browser site (`make site`, build/site/) in headless Chromium: every lesson opens in JupyterLite, runs
top to bottom on the committed recordings inside the tab, and gives the committed outputs; lesson 01's guide
cells run on the in-browser model (wllama); no request leaves the site's origin.

No request can leave unseen: Chromium sends every request, loopback included
(`--proxy-bypass-list=<-loopback>`), through the test's own server as its HTTP proxy, which serves the site
and refuses and counts every other host. Every other host is also unresolvable (`--host-resolver-rules`), as
on a machine with no network.
Screenshots of each lesson go to build/screenshots/site-*.png.
"""

from __future__ import annotations

import configparser
import functools
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser_helpers import CHROMIUM_ARGS, chromium

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SCREENSHOTS = ROOT / "build" / "screenshots"
KERNEL_SECONDS = 180
LESSON_SECONDS = 600

# Cells a browser tab cannot run (a process, a thread or a socket of the lesson's own), by lesson and by
# the start of the cell's source. In the tab each shows one sentence pointing to the local route instead of
# its committed output, and never a traceback. Every other cell must give its committed output.
LOCAL_ONLY = {
    "03-code-generation": (
        "if snippet is None",
        "wrong = run_isolated",
        "if found is not None",
        "print(akash_nb.generated_code.run_tests",
    ),
    "07-failures-and-cost": (
        "import json\nimport threading",
        "try:\n    limited.",
        "started = time.monotonic()\nanswer = limited",
    ),
}
LOCAL_ROUTE = "make lab"

KERNEL_IDLE = """() => {
  const app = window.jupyterapp; if (!app) return false;
  const panel = app.shell.currentWidget;
  const ctx = panel && panel.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return !!(kernel && ctx.isReady && kernel.status === 'idle');
}"""
WRITE_ENV = """async (text) => {
  await window.jupyterapp.serviceManager.contents.save('.env', {type: 'file', format: 'text', content: text});
}"""
RUN_ALL = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute('notebook:run-all-cells');
}"""
NOTEBOOK_JSON = "() => window.jupyterapp.shell.currentWidget.content.model.toJSON()"
EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  const out = [];
  future.onIOPub = (msg) => {
    const kind = msg.header.msg_type, c = msg.content;
    if (kind === 'stream') out.push({kind, name: c.name, text: c.text, at: performance.now()});
    else if (kind === 'execute_result' || kind === 'display_data')
      out.push({kind, text: c.data['text/plain'] || '', at: performance.now()});
    else if (kind === 'error') out.push({kind, text: `${c.ename}: ${c.evalue}`, at: performance.now()});
  };
  const started = performance.now();
  await future.done;
  return {out, started, ended: performance.now()};
}"""


# Chromium's own services (sign-in, component updates, autofill), which it calls whatever page is open, even
# with its background networking switched off. They are the browser's requests, not the site's: the proxy
# refuses them too, and the site's own requests (the page's and its workers', as Playwright reports them)
# are checked separately, with no exception.
BROWSER_SERVICES = re.compile(r"^(?:[a-z0-9-]+\.)*(?:google\.com|googleapis\.com|gvt1\.com)(?::\d+)?$")


class _SiteAndProxy(http.server.SimpleHTTPRequestHandler):
    """Serves build/site/ and, as Chromium's proxy, refuses (and records) every request for another host."""

    extensions_map = {  # noqa: RUF012
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".gguf": "application/octet-stream",
    }
    origin = ""
    foreign: list[str]
    served: list[str]

    def _own(self) -> bool:
        parts = urlsplit(self.path)
        if parts.scheme or self.command == "CONNECT":
            host = parts.netloc or self.path
            if f"http://{host}" != self.origin:
                if not BROWSER_SERVICES.match(host):
                    self.foreign.append(f"{self.command} {self.path}")
                self.send_error(403, "off-origin request refused by the site test")
                return False
            self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.served.append(self.path)
        return True

    def do_GET(self) -> None:
        if self._own():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._own():
            super().do_HEAD()

    def do_POST(self) -> None:
        if self._own():
            self.send_error(405)

    def do_CONNECT(self) -> None:
        self._own()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, list[str], list[str]]]:
    assert (SITE / "index.html").is_file(), "build/site/ is not built: run `make site` (make site-test does)."
    foreign: list[str] = []
    served: list[str] = []
    handler = functools.partial(_SiteAndProxy, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    _SiteAndProxy.origin, _SiteAndProxy.foreign, _SiteAndProxy.served = origin, foreign, served
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield origin, foreign, served
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    origin = site[0]
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(chromium()),
            args=[
                *CHROMIUM_ARGS,
                "--headless",
                f"--proxy-server={origin}",
                "--proxy-bypass-list=<-loopback>",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        yield launched
        launched.close()


def _sanitizers() -> list[tuple[re.Pattern[str], str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / "tests" / "sanitize.cfg")
    rules = [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]
    # What differs because the answers come from the tab itself, and because the test chooses the route as a
    # learner would (a .env in the site's files) where `make notebooks` set the environment: the in-tab
    # routes' URLs stand where the loopback servers' stand, and the replay label says where it answers.
    rules[:0] = [
        (re.compile(r"http://(?:replay|in-browser)\.localhost/v1"), "http://127.0.0.1:PORT/v1"),
        (re.compile(r"; answered in this tab\)"), ")"),
        (re.compile(r"AKASH_NB_PROVIDER in /drive/\.env"), "environment variable AKASH_NB_PROVIDER"),
    ]
    return rules


SANITIZE = _sanitizers()


def sanitized(text: str) -> str:
    for pattern, replacement in SANITIZE:
        text = pattern.sub(replacement, text)
    return text


def shown(outputs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What nbval compares of a cell's outputs: streams by name and the text/plain of results and displays
    (a widget's view id differs from run to run; its text/plain does not), errors by name."""
    result = []
    for out in outputs:
        kind = out["output_type"]
        if kind == "stream":
            text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
            if result and result[-1][0] == out["name"]:  # the kernel may split a stream differently
                result[-1] = (out["name"], result[-1][1] + text)
            else:
                result.append((out["name"], text))
        elif kind in ("execute_result", "display_data"):
            text = out.get("data", {}).get("text/plain", "")
            result.append(("result", "".join(text) if isinstance(text, list) else text))
        elif kind == "error":
            result.append(("error", out["ename"]))
    return [(name, sanitized(text)) for name, text in result]


def new_context(browser, site, provider: str):
    """A browser profile of its own (its storage, its cache) whose site contents hold a `.env` choosing
    `provider`, as a learner's would. Every request its pages and their workers make that is not for the
    site (Playwright sees them before the proxy does) goes to the site's list of foreign requests."""
    origin, foreign, _ = site
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def seen(request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and f"http://{parts.netloc}" != origin:
            foreign.append(f"{request.method} {request.url} (from the page)")

    context.on("request", seen)
    page = context.new_page()
    page.goto(f"{origin}/lab/index.html")
    page.wait_for_function("() => !!window.jupyterapp", timeout=KERNEL_SECONDS * 1000)
    page.evaluate(WRITE_ENV, f"AKASH_NB_PROVIDER={provider}\n")
    page.close()
    return context


def open_lesson(context, origin: str, name: str):
    page = context.new_page()
    page.goto(f"{origin}/lab/index.html?path={name}.ipynb")
    page.wait_for_function(KERNEL_IDLE, timeout=KERNEL_SECONDS * 1000, polling=500)
    return page


@pytest.fixture(scope="module")
def replay_context(browser, site):
    """One profile for every lesson on replay: the kernel's files come from its cache after the first."""
    context = new_context(browser, site, "replay")
    yield context
    context.close()


def local_only(lesson: str, source: str) -> bool:
    return source.startswith(LOCAL_ONLY.get(lesson, ()))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_in_the_tab_on_replay_with_its_committed_outputs(replay_context, site, path):
    origin, foreign, _ = site
    committed = json.loads(path.read_text(encoding="utf-8"))
    page = open_lesson(replay_context, origin, path.stem)
    try:
        page.evaluate(RUN_ALL)
        page.wait_for_function(KERNEL_IDLE, timeout=LESSON_SECONDS * 1000, polling=500)
        ran = page.evaluate(NOTEBOOK_JSON)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"site-{path.stem}.png"), full_page=False)
    finally:
        page.close()
    mine = [c for c in committed["cells"] if c["cell_type"] == "code"]
    theirs = [c for c in ran["cells"] if c["cell_type"] == "code"]
    assert len(theirs) == len(mine)
    differences = []
    for index, (want, got) in enumerate(zip(mine, theirs, strict=True)):
        source = "".join(want["source"])
        outputs = shown(got["outputs"])
        if local_only(path.stem, source):
            text = "".join(t for _, t in outputs)
            assert "Traceback" not in text and LOCAL_ROUTE in text, (
                f"{path.stem} code cell {index} cannot run in a tab; it must say so in one sentence naming "
                f"`{LOCAL_ROUTE}`, and showed: {text[:600]!r}"
            )
            continue
        if shown(want["outputs"]) != outputs:
            differences.append(
                f"code cell {index} ({source.splitlines()[0][:60]!r}):\n"
                f"  committed: {shown(want['outputs'])!r}\n  in the tab: {outputs!r}"
            )
    assert not differences, f"{path.stem}: outputs differ in the browser:\n" + "\n".join(differences)[:6000]
    assert foreign == [], f"requests left the site's origin: {foreign[:10]}"


def _size(path: str) -> int:
    file = SITE / urlsplit(path).path.lstrip("/")
    if file.is_dir():
        file = file / "index.html"
    return file.stat().st_size if file.is_file() else 0


def run_guide_cells(page, lesson: dict[str, Any]) -> list[dict[str, Any]]:
    """Lesson 01's own first cells, as committed: the banner, the guide's client, the model choice, the
    guide's create call, the guide beside you, and what the response holds. Each cell's outputs."""
    code = [c for c in lesson["cells"] if c["cell_type"] == "code"][:6]
    results = [page.evaluate(EXECUTE, "".join(c["source"])) for c in code]
    GUIDE_CELL_SECONDS.append([round((r["ended"] - r["started"]) / 1000, 1) for r in results])
    return [r["out"] for r in results]


GUIDE_CELL_SECONDS: list[list[float]] = []  # each run's seconds per guide cell, for the report


def test_lesson_01_guide_cells_run_on_the_in_browser_model_and_stream(browser, site):
    origin, foreign, served = site
    lesson = json.loads((ROOT / "notebooks" / "01-basic-completion.ipynb").read_text(encoding="utf-8"))
    timings: dict[str, float] = {}
    context = new_context(browser, site, "browser")
    try:
        first = len(served)
        started = time.monotonic()
        page = open_lesson(context, origin, "01-basic-completion")
        timings["kernel_idle_s"] = time.monotonic() - started
        cells = run_guide_cells(page, lesson)
        timings["first_answer_cold_s"] = time.monotonic() - started
        for index, outputs in enumerate(cells):
            assert not [o for o in outputs if o["kind"] == "error"], f"guide cell {index}: {outputs}"
        banner = "".join(o["text"] for o in cells[0])
        assert "in-browser" in banner.lower() and "127.0.0.1" not in banner, banner
        facts = "".join(o["text"] for o in cells[5])
        assert re.search(r"model: +SmolLM2-135M-Instruct", facts), facts
        assert re.search(r"usage: +\d+", facts), facts
        stream = page.evaluate(
            EXECUTE,
            "stream = client.chat.completions.create(model=model, "
            "messages=[{'role': 'user', 'content': 'Name one planet of the solar system.'}], max_tokens=24, "
            "stream=True, stream_options={'include_usage': True})\n"
            "pieces, usage = [], None\n"
            "for chunk in stream:\n"
            "    if chunk.choices and chunk.choices[0].delta.content:\n"
            "        pieces.append(chunk.choices[0].delta.content)\n"
            "        print(chunk.choices[0].delta.content, end='', flush=True)\n"
            "    if chunk.usage:\n"
            "        usage = chunk.usage\n"
            "print()\n"
            "print('CHUNKS', len(pieces), 'USAGE', usage.prompt_tokens, usage.completion_tokens)",
        )
        out = "".join(o["text"] for o in stream["out"])
        assert not [o for o in stream["out"] if o["kind"] == "error"], out
        match = re.search(r"CHUNKS (\d+) USAGE (\d+) (\d+)", out)
        assert match, out
        chunks, prompt_tokens, completion_tokens = map(int, match.groups())
        assert chunks >= 2 and prompt_tokens > 0 and completion_tokens >= chunks, out
        assert out.split("CHUNKS")[0].strip(), "a real answer, not an empty one"
        # streamed: the pieces reached the notebook one by one while the answer was made, not at the end
        pieces = [o for o in stream["out"] if o["kind"] == "stream"][:-1]
        assert len(pieces) >= 2 and pieces[-1]["at"] - pieces[0]["at"] > 50, stream["out"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "site-01-in-browser-model.png"))
        page.close()
        # warm: the same browser opens the lesson again; the model comes from its storage, not the network
        before = len(served)
        timings["first_load_mb"] = sum(_size(path) for path in set(served[first:before])) / 1e6
        started = time.monotonic()
        page = open_lesson(context, origin, "01-basic-completion")
        cells = run_guide_cells(page, lesson)
        timings["first_answer_warm_s"] = time.monotonic() - started
        assert not [o for c in cells for o in c if o["kind"] == "error"], cells
        assert not [p for p in served[before:] if "model.gguf" in p], "warm: the model comes from storage"
    finally:
        context.close()
    assert any("/static/akash-nb/model.gguf?v=" in p for p in served), "the model came from the site itself"
    assert foreign == [], f"requests left the site's origin: {foreign[:10]}"
    report = ROOT / "build" / "site-first-answer.json"
    figures = {k: round(v, 1) for k, v in timings.items()} | {"guide_cell_seconds": GUIDE_CELL_SECONDS}
    report.write_text(json.dumps(figures, indent=1) + "\n")
