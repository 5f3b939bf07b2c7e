"""browser/bridge.js on a real page: a loopback site holding the bridge, wllama and the model, and Chromium.

For tests/test_bridge.py and benchmarks/browser_decode.py. The site is a temporary folder laid out as
`make site` lays out `{site}/static/akash-nb/` (bridge.js, wllama/, wllama-compat/, model.gguf), plus a page
that starts the bridge inside a Web Worker (where the Pyodide kernel runs it) and relays calls to it.
Chromium resolves no host but 127.0.0.1, and every request the server sees is kept for the tests to check.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
BROWSER = ROOT / "browser"
WLLAMA = BROWSER / "node_modules" / "@wllama" / "wllama" / "esm"
WLLAMA_COMPAT = BROWSER / "node_modules" / "@wllama" / "wllama-compat"
NPM_CI = "npm ci --ignore-scripts --no-audit --no-fund --prefix browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
BASE = "http://in-browser.localhost/v1"  # the URL Python's transport hands the bridge (never fetched)

# The page: startWorker(kind, name) starts probe.js as a "module" or "classic" worker, named `name` (default:
# the kind); call(name, op, args) relays. A worker named "no-jspi" runs without JSPI (as Safari does).
INDEX_HTML = """<!doctype html><meta charset="utf-8"><title>bridge probe</title>
<link rel="icon" href="data:,">
<script>
const workers = {};
function startWorker(kind, name = kind) {
  const worker = new Worker('./probe.js', { type: kind, name });
  const pending = new Map();
  let next = 0;
  worker.onmessage = ({ data }) => {
    const { resolve, reject } = pending.get(data.id);
    pending.delete(data.id);
    data.error === undefined ? resolve(data.result) : reject(new Error(data.error));
  };
  worker.onerror = (event) => {
    for (const { reject } of pending.values()) reject(new Error(event.message));
  };
  workers[name] = (op, args) => new Promise((resolve, reject) => {
    const id = next++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args });
  });
}
function call(name, op, args) { return workers[name](op, args); }
</script>
"""

# The worker: only a dynamic import(), so the same file runs as a module worker and as a classic one.
PROBE_JS = """
if (self.name === 'no-jspi') delete WebAssembly.Suspending; // as in a browser without JSPI
const bridge = import('./bridge.js');
const seconds = (since) => (performance.now() - since) / 1000;
const ops = {
  async status() { return (await bridge).status(); },
  async load() {
    const started = performance.now();
    await (await bridge).load();
    return { seconds: seconds(started), status: (await bridge).status() };
  },
  // One request; a stream is read event by event, each with its arrival time (abortAfter: content events).
  async request(method, url, body, abortAfter) {
    const controller = new AbortController();
    const started = performance.now();
    const response = await (await bridge).handle(method, url, { 'content-type': 'application/json' }, body,
      controller.signal);
    const result = { status: response.status, contentType: response.headers.get('content-type'),
      isStream: response.body instanceof ReadableStream, events: [], text: null, aborted: false };
    if (!(result.contentType || '').startsWith('text/event-stream')) {
      result.text = await response.text();
      result.seconds = seconds(started);
      return result;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let content = 0;
    reading: while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\\n\\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        result.events.push({ data: event.replace(/^data: /, ''), at: seconds(started) });
        if (event.includes('"content":"') && !event.includes('"role"')) content += 1;
        if (abortAfter && content >= abortAfter) {
          controller.abort();
          await reader.cancel();
          result.aborted = true;
          break reading;
        }
      }
    }
    result.seconds = seconds(started);
    return result;
  },
};
self.onmessage = async ({ data }) => {
  try {
    postMessage({ id: data.id, result: await ops[data.op](...data.args) });
  } catch (error) {
    postMessage({ id: data.id, error: String((error && error.stack) || error) });
  }
};
"""


def missing() -> str | None:
    """Why the page cannot be built here (one sentence), or None."""
    if not (WLLAMA / "index.js").is_file() or not (WLLAMA_COMPAT / "wasm" / "wllama.wasm").is_file():
        return f"wllama is not installed in browser/node_modules: run `{NPM_CI}`."
    return None


def build(folder: Path, model: Path) -> Path:
    """Lay out the bridge's folder in `folder` (the big files as links) and return it."""
    shutil.copy(BROWSER / "bridge.js", folder / "bridge.js")
    (folder / "wllama").symlink_to(WLLAMA, target_is_directory=True)
    (folder / "wllama-compat").symlink_to(WLLAMA_COMPAT, target_is_directory=True)
    (folder / "model.gguf").symlink_to(model)
    (folder / "index.html").write_text(INDEX_HTML)
    (folder / "probe.js").write_text(PROBE_JS)
    return folder


@dataclass
class Site:
    """The loopback server: its origin, and every path it was asked for."""

    origin: str
    served: list[str] = field(default_factory=list)


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".gguf": "application/octet-stream",
    }

    def __init__(self, *args: Any, served: list[str], **kwargs: Any) -> None:
        self._served = served
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        self._served.append(f"{self.command} {self.path}")


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[Site]:
    """Serve `folder` on 127.0.0.1 (a free port) until the block ends."""
    served: list[str] = []
    handler = partial(_Handler, directory=str(folder), served=served)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_address[1]}", served)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
