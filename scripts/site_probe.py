"""A quick look at the built site (build/site/) in headless Chromium, every host but 127.0.0.1 blocked: the
lesson opens, the Pyodide kernel starts from the site's own files, a few cells run, and no request leaves the
origin. A maintainer's probe (`make site-probe`), not the site's test (tests/test_site.py).

    python scripts/site_probe.py [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site"

EXECUTE = """async (code) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  const out = [];
  future.onIOPub = (msg) => {
    const kind = msg.header.msg_type, c = msg.content;
    if (kind === 'stream') out.push(c.text);
    else if (kind === 'execute_result' || kind === 'display_data')
      out.push((c.data['text/plain'] || '') + '\\n');
    else if (kind === 'error') out.push(`ERROR ${c.ename}: ${c.evalue}\\n`);
  };
  await future.done;
  return out.join('');
}"""
KERNEL_READY = """() => {
  const app = window.jupyterapp; if (!app) return false;
  const panel = app.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return !!(session && session.kernel && session.kernel.status === 'idle' && panel.sessionContext.isReady);
}"""

CELLS = {
    "platform": "import openai, ipywidgets\nimport sys\nprint(sys.platform, openai.__version__)",
    "akash_nb": "import akash_nb\nprint('akash_nb imported from', akash_nb.__file__)",
    "run_sync": (
        "from pyodide.ffi import run_sync\nfrom pyodide.code import run_js\n"
        'print(run_sync(run_js("new Promise(r => setTimeout(() => r(42), 100))")))'
    ),
    "run_sync_nested": (
        "from pyodide.ffi import run_sync\nfrom pyodide.code import run_js\n"
        "def deep():\n"
        '    return run_sync(run_js("new Promise(r => setTimeout(() => r(43), 50))"))\n'
        "print(sorted([deep() for _ in range(2)]))"
    ),
    "can_run_sync": "from pyodide.ffi import can_run_sync\nprint(can_run_sync())",
    "location": "import js\nprint(js.location.href)\nprint('/extensions/' in js.location.href)",
    "worker_kind": (
        "from pyodide.code import run_js\n"
        "print(run_js('''(() => { try { importScripts(); return 'classic worker' }"
        " catch (e) { return 'module worker (' + e.name + ')' } })()'''))"
    ),
    "dynamic_import": (
        "from pyodide.code import run_js\nimport js\n"
        "site = js.location.href.split('/extensions/')[0]\n"
        "mod = await run_js(f\"import('{site}/static/akash-nb/wllama/index.js')\")\n"
        "print('import() of a same-origin ES module:', 'Wllama' in dir(mod))"
    ),
    "lock": (
        "import micropip\nprint(len(micropip.list()), 'packages;', 'akash-nb' in micropip.list(),"
        " 'akash-nb-recordings' in micropip.list())"
    ),
}


WIDGET_CELL = """import ipywidgets
from pyodide.ffi import run_sync
from pyodide.code import run_js
from pyodide.ffi import can_run_sync
import js
probe_result = []
def probe_click(_):
    probe_result.append(f"can_run_sync={can_run_sync()}")
    xhr = js.XMLHttpRequest.new()
    xhr.open("GET", js.location.href.split("/extensions/")[0] + "/jupyter-lite.json", False)
    xhr.send()
    probe_result.append(f"sync XHR status={xhr.status}")
    import asyncio
    async def in_task():
        probe_result.append(f"in an asyncio task: can_run_sync={can_run_sync()}")
        try:
            probe_result.append(run_sync(run_js("new Promise(r => setTimeout(() => r(45), 50))")))
        except BaseException as e:
            probe_result.append(f"in task {type(e).__name__}: {e}")
    asyncio.ensure_future(in_task())
    try:
        probe_result.append(run_sync(run_js("new Promise(r => setTimeout(() => r(44), 50))")))
    except BaseException as e:
        probe_result.append(f"{type(e).__name__}: {e}")
probe_button = ipywidgets.Button(description="probe-run-sync")
probe_button.on_click(probe_click)
probe_button"""

RUN_NEW_CELL = """async (code) => {
  const app = window.jupyterapp, panel = app.shell.currentWidget;
  panel.content.activeCellIndex = 0;
  await app.commands.execute('notebook:insert-cell-above');
  panel.content.activeCell.model.sharedModel.setSource(code);
  await app.commands.execute('notebook:run-cell');
}"""


def widget_callback(page: Page) -> str:
    """Does run_sync work in a widget's callback (a comm message, not a cell's execute)?"""
    page.evaluate(RUN_NEW_CELL, WIDGET_CELL)
    page.locator("button:has-text('probe-run-sync')").first.click(timeout=60_000)
    time.sleep(2)
    return str(page.evaluate(EXECUTE, "print(probe_result)")).strip()


class Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the findings here too")
    args = parser.parse_args()
    if not (SITE / "index.html").exists():
        print("build/site/ is not built: run make site first.", file=sys.stderr)
        return 1
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    requests: list[str] = []
    findings: dict[str, object] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--headless", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        context = browser.new_context()
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and print("    console:", m.text[:200]))
        started = time.monotonic()
        page.goto(f"{origin}/lab/index.html?path=01-basic-completion.ipynb")
        page.wait_for_function(KERNEL_READY, timeout=180_000, polling=500)
        findings["kernel_ready_s"] = round(time.monotonic() - started, 1)
        print(f"==> kernel idle after {findings['kernel_ready_s']} s")
        for name, code in CELLS.items():
            t0 = time.monotonic()
            out = page.evaluate(EXECUTE, code)
            findings[name] = out.strip()
            print(f"--- {name} ({time.monotonic() - t0:.1f} s)\n{out.rstrip()}")
        findings["widget_callback"] = widget_callback(page)
        print(f"--- widget_callback\n{findings['widget_callback']}")
        browser.close()
    server.shutdown()
    foreign = sorted({u for u in requests if urlsplit(u).netloc != urlsplit(origin).netloc})
    findings["requests"] = len(requests)
    findings["foreign_requests"] = foreign
    print(f"==> {len(requests)} requests; leaving the origin: {foreign or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(findings, indent=2) + "\n")
    return 1 if foreign else 0


if __name__ == "__main__":
    sys.exit(main())
