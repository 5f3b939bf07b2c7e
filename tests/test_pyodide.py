"""akash_nb and its fetch transport under real Pyodide in headless Chromium (no JupyterLite: the site test
covers that). A temp folder on 127.0.0.1 holds npm's Pyodide core and the wheels (openai's, Pyodide-tagged or
pure, from PyPI; httpx2_jsfetch and akash_nb built from this repository; akash_nb_recordings from
recordings/); every other host is blocked in Chromium. Checked: `import akash_nb` and the default
route, replay answered in the tab (stream and not), fetch to a real loopback server (sync, async, streamed
chunk by chunk, no x-stainless-* headers), a server that refuses CORS as one sentence, and what a tab cannot
start (code.run_tests, lesson 03's subprocess and lesson 07's thread cells) as one sentence each."""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from browser_helpers import chromium

from akash_nb._core.in_browser import MODEL_SHOWN

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
PYODIDE = ROOT / "browser" / "node_modules" / "pyodide"
PYODIDE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
RECORDED = {"plain": "02ed62539b9ec0d2", "stream": "ef37ff092237df33"}
# A stand-in for browser/bridge.js with its API (handle -> Response; a stream's body a ReadableStream), so
# that the in-browser route's plumbing is checked here without the model (the site test runs the real one).
STUB_BRIDGE = """
export async function handle(method, url, headers, body) {
  const request = JSON.parse(body || "{}");
  const words = ["in ", "the ", "tab"];
  const chunk = (w) => `data: ${JSON.stringify({id: "b", object: "chat.completion.chunk", created: 0,
    model: "SmolLM2-135M-Instruct", choices: [{index: 0, delta: {content: w}, finish_reason: null}]})}\\n\\n`;
  if (!request.stream) {
    return new Response(JSON.stringify({id: "b", object: "chat.completion", created: 0,
      model: "SmolLM2-135M-Instruct", choices: [{index: 0, finish_reason: "stop",
      message: {role: "assistant", content: words.join("") + " " + method + " " + headers["authorization"]}}],
      usage: {prompt_tokens: 1, completion_tokens: 3, total_tokens: 4}}),
      {status: 200, headers: {"Content-Type": "application/json"}});
  }
  const encoder = new TextEncoder();
  const stream = new ReadableStream({
    async pull(controller) {
      const word = words.shift();
      if (word === undefined) {
        controller.enqueue(encoder.encode("data: [DONE]\\n\\n"));
        controller.close();
        return;
      }
      await new Promise((r) => setTimeout(r, 300));
      controller.enqueue(encoder.encode(chunk(word)));
    },
  });
  return new Response(stream, {status: 200, headers: {"Content-Type": "text/event-stream"}});
}
"""


def _site_tool():
    """scripts/site.py, whose pinned wheels and built ones are the ones the site ships."""
    spec = importlib.util.spec_from_file_location("akash_nb_site_tool", ROOT / "scripts" / "site.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _wheels(folder: Path) -> list[Path]:
    """Every wheel the page installs, into `folder`: the site's, from browser/wheels.lock (hash-checked)
    and built from this checkout."""
    site = _site_tool()
    for wheel in site.download_locked():
        shutil.copy(wheel, folder)
    site.build_wheel(ROOT, folder)
    site.build_wheel(ROOT / "browser" / "httpx2_jsfetch", folder)
    site.recordings_wheel(folder)
    return sorted(folder.glob("*.whl"))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _Api(BaseHTTPRequestHandler):
    """A small OpenAI-shaped server: /v1/models, and a streamed chat completion of three chunks 0.4 s apart.
    `cors` decides whether it lets another origin read its answers."""

    protocol_version = "HTTP/1.1"
    cors = True
    seen: ClassVar[list[dict[str, str]]] = []

    def _cors(self) -> None:
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "authorization, content-type")
            self.send_header("Access-Control-Allow-Methods", "GET, POST")

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        data = json.dumps({"object": "list", "data": [{"id": "stand-in", "object": "model"}]}).encode()
        self.send_response(200)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self._cors()
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, word in enumerate(["one ", "two ", "three"]):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "stand-in",
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            self._event(json.dumps(chunk))
            if index < 2:
                time.sleep(0.4)
        self._event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    def _event(self, data: str) -> None:
        body = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Refusing(_Api):
    cors = False


def _serve(handler: type[BaseHTTPRequestHandler], **kwargs: object) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, **kwargs))  # type: ignore[arg-type]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    """A page on 127.0.0.1 with Pyodide loaded and every wheel installed: `tab(python)` runs `python`
    through runPythonAsync and returns its last expression (JSON-decoded)."""
    from playwright.sync_api import sync_playwright

    if not (PYODIDE / "pyodide.asm.wasm").is_file():
        pytest.fail("npm's pyodide is missing: npm ci --ignore-scripts --no-audit --no-fund --prefix browser")
    site = tmp_path_factory.mktemp("pyodide-site")
    (site / "pyodide").mkdir()
    for name in PYODIDE_FILES:
        shutil.copy(PYODIDE / name, site / "pyodide" / name)
    (site / "wheels").mkdir()
    wheels = [f"/wheels/{w.name}" for w in _wheels(site / "wheels")]
    (site / "index.html").write_text("<!doctype html><title>pyodide</title>\n")
    (site / "static" / "akash-nb").mkdir(parents=True)
    (site / "static" / "akash-nb" / "bridge.js").write_text(STUB_BRIDGE)
    server = _serve(_Quiet, directory=str(site))
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium()),
            args=["--no-sandbox", "--headless", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{origin}/index.html")
        started = time.monotonic()
        page.evaluate(
            """async (wheels) => {
                const { loadPyodide } = await import("/pyodide/pyodide.mjs");
                const py = await loadPyodide({ indexURL: "/pyodide/" });
                for (const url of wheels) {
                    const data = await (await fetch(url)).arrayBuffer();
                    py.unpackArchive(data, "wheel", { extractDir: "/lib/python3.14/site-packages" });
                }
                window.py = py;
            }""",
            wheels,
        )
        loaded = time.monotonic() - started

        def run(code: str) -> object:
            wrapped = f"import json as _json\n{code}\n"
            lines = wrapped.rstrip().splitlines()
            lines[-1] = f"_json.dumps({lines[-1]})"
            return json.loads(page.evaluate("(code) => window.py.runPythonAsync(code)", "\n".join(lines)))

        def run_plain(code: str) -> object:
            """`code` through runPython (no JSPI: the sync transport falls back to a sync XHR)."""
            return page.evaluate("(code) => String(window.py.runPython(code))", code)

        run.plain = run_plain  # type: ignore[attr-defined]
        run.loaded_seconds = loaded  # type: ignore[attr-defined]
        run.requests = requests  # type: ignore[attr-defined]
        run.origin = origin  # type: ignore[attr-defined]
        yield run
        browser.close()
    server.shutdown()


def test_import_akash_nb_defaults_to_the_in_browser_model(tab):
    assert tab("import sys\nsys.platform") == "emscripten"
    shown = tab(
        "import akash_nb, akash_nb._render\n"
        "key, url = akash_nb.connection_values(show=False)\n"
        "conn = akash_nb._core.connection.connection_for_url(url)\n"
        "[url, akash_nb._render.connection_text(conn)]"
    )
    assert shown[0] == "http://in-browser.localhost/v1"
    assert f"in-browser model ({MODEL_SHOWN})" in shown[1]


def _recording(name: str) -> dict:
    return json.loads((ROOT / "recordings" / f"{RECORDED[name]}.json").read_text())


def test_replay_answers_in_the_tab_with_the_recorded_text(tab):
    plain, stream = _recording("plain"), _recording("stream")
    expected_plain = plain["response"]["body"]["choices"][0]["message"]["content"]
    expected_stream = "".join(
        (json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for e in stream["response"]["events"]
        if e != "[DONE]"
    )
    got = tab(
        "import os, openai, akash_nb, akash_nb._render\n"
        "os.environ['AKASH_NB_PROVIDER'] = 'replay'\n"
        "key, url = akash_nb.connection_values(show=False)\n"
        "banner = akash_nb._render.connection_text(akash_nb._core.connection.connection_for_url(url))\n"
        "client = openai.OpenAI(api_key=key, base_url=url)\n"
        f"plain = client.chat.completions.create(**{plain['request']['body']!r})\n"
        f"chunks = list(client.chat.completions.create(**{stream['request']['body']!r}))\n"
        "streamed = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)\n"
        "made = akash_nb.client(show=False)  # the package's own client: its hooks and TLS setting\n"
        f"again = made.chat.completions.create(**{plain['request']['body']!r}).choices[0].message.content\n"
        "try:\n"
        "    client.chat.completions.create(model='x',\n"
        "        messages=[{'role': 'user', 'content': 'never asked'}])\n"
        "    miss = None\n"
        "except openai.APIStatusError as error:\n"
        "    miss = akash_nb.explain(error).sentence\n"
        "del os.environ['AKASH_NB_PROVIDER']\n"
        "[url, banner, plain.choices[0].message.content, streamed, len(chunks), miss, again]"
    )
    url, banner, text, streamed, count, miss, again = got
    assert url == "http://replay.localhost/v1"
    assert "answered in this tab" in banner
    assert text == expected_plain and again == expected_plain
    assert streamed == expected_stream and count >= 2
    assert miss.startswith('No recording for POST /v1/chat/completions, model x, "never asked"')


def test_fetch_reaches_a_loopback_server_sync_async_and_streamed(tab):
    _Api.seen = []
    server = _serve(_Api)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        got = tab(
            "import time, openai\n"
            f"client = openai.OpenAI(api_key='k', base_url={url!r}, max_retries=0)\n"
            "sync_models = [m.id for m in client.models.list()]\n"
            f"aclient = openai.AsyncOpenAI(api_key='k', base_url={url!r}, max_retries=0)\n"
            "async_models = [m.id async for m in await aclient.models.list()]\n"
            "arrived = []\n"
            "for chunk in client.chat.completions.create(model='stand-in', stream=True,\n"
            "        messages=[{'role': 'user', 'content': 'count'}]):\n"
            "    arrived.append((time.monotonic(), chunk.choices[0].delta.content))\n"
            "astream = await aclient.chat.completions.create(model='stand-in', stream=True,\n"
            "        messages=[{'role': 'user', 'content': 'count'}])\n"
            "atext = ''.join([c.choices[0].delta.content async for c in astream])\n"
            "times = [t - arrived[0][0] for t, _ in arrived]\n"
            "[sync_models, async_models, times, [w for _, w in arrived], atext]"
        )
    finally:
        server.shutdown()
    sync_models, async_models, times, words, atext = got
    assert sync_models == ["stand-in"] and async_models == ["stand-in"]
    assert words == ["one ", "two ", "three"] and atext == "one two three"
    assert times[-1] >= 0.6, f"the chunks came together, not as sent: {times}"  # 0.4 s apart on the wire
    assert _Api.seen and not [h for seen in _Api.seen for h in seen if h.startswith("x-stainless-")]


def test_a_server_that_refuses_cors_is_one_sentence(tab):
    server = _serve(_Refusing)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        sentence = tab(
            "import openai, akash_nb\n"
            f"key, url = akash_nb.connection_values('openai-compatible', base_url={url!r}, show=False)\n"
            "client = openai.OpenAI(api_key=key, base_url=url, max_retries=0)\n"
            "try:\n"
            "    client.models.list()\n"
            "    said = None\n"
            "except openai.APIConnectionError as error:\n"
            "    said = akash_nb._core.connection.connection_for(client).explain(error).sentence\n"
            "said"
        )
    finally:
        server.shutdown()
    assert sentence is not None and url in sentence and "CORS" in sentence and "make lab" in sentence
    assert sentence.count(". ") == 0, sentence


def test_what_a_tab_cannot_start_is_one_sentence(tab):
    said = tab(
        "import akash_nb, akash_nb.generated_code\n"
        "try:\n"
        "    akash_nb.generated_code.run_tests('x = 1', 'assert x == 1')\n"
        "    said = None\n"
        "except akash_nb.AkashNBError as error:\n"
        "    said = error.sentence\n"
        "said"
    )
    assert said is not None and "browser tab" in said and "make lab" in said


def _cells(lesson: str, numbers: list[int]) -> list[str]:
    (path,) = (ROOT / "notebooks").glob(f"{lesson}-*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    return ["".join(cells[n]["source"]) for n in numbers]


def test_lesson_cells_that_start_a_process_or_a_thread_show_one_sentence(tab):
    cells = [
        "tests = \"assert reverse_string('ab') == 'ba'\"",
        *_cells("03", [20, 23]),
        "import openai, time",
        *_cells("07", [21, 23, 25]),
    ]
    shown = tab(
        "import contextlib, io\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "import akash_nb._replay.in_tab, akash_nb._render\n"
        "akash_nb._replay.in_tab.install()\n"
        "akash_nb._error_display.install_error_display()\n"
        "shown = []\n"
        f"for cell in {cells!r}:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "        shell.run_cell(cell)\n"
        "    shown.append(out.getvalue())\n"
        "shown"
    )
    for source, output in zip(cells, shown, strict=True):
        if source in _cells("03", [23]) + _cells("07", [21, 23, 25]):
            assert "make lab" in output and "Traceback" not in output, (source[:60], output)
            assert len(output.strip().splitlines()) == 1, output
    assert "lesson" in shown[2] and "process" in shown[2]
    # ThreadingHTTPServer fails first (listening), before the thread: Pyodide's OSError(138) from socketserver
    assert "network server" in shown[4] and "limited" in shown[5] and "limited" in shown[6]


def test_without_jspi_the_sync_client_falls_back_to_a_sync_xhr(tab):
    server = _serve(_Api)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        got = tab.plain(
            "import openai\nfrom pyodide.ffi import can_run_sync\n"
            f"client = openai.OpenAI(api_key='k', base_url={url!r}, max_retries=0)\n"
            "str([can_run_sync(), [m.id for m in client.models.list()]])"
        )
    finally:
        server.shutdown()
    assert got == "[False, ['stand-in']]"


class _Slow(_Api):
    def do_GET(self) -> None:
        time.sleep(3)
        super().do_GET()


def test_the_request_s_timeout_is_honoured(tab):
    server = _serve(_Slow)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        got = tab(
            "import time, openai\n"
            f"client = openai.OpenAI(api_key='k', base_url={url!r}, max_retries=0, timeout=0.5)\n"
            "started = time.monotonic()\n"
            "try:\n"
            "    client.models.list()\n"
            "    kind = None\n"
            "except openai.APIConnectionError as error:\n"
            "    kind = type(error).__name__\n"
            "[kind, time.monotonic() - started]"
        )
    finally:
        server.shutdown()
    assert got[0] == "APITimeoutError" and got[1] < 2.5, got


def test_the_in_browser_route_reads_bridge_js_s_response_sync_async_and_streamed(tab):
    got = tab(
        "import os, openai, akash_nb\n"
        f"os.environ['AKASH_NB_SITE_ROOT'] = {tab.origin!r}\n"
        "key, url = akash_nb.connection_values(show=False)\n"
        "client = openai.OpenAI(api_key=key, base_url=url)\n"
        "plain = client.chat.completions.create(model='SmolLM2-135M-Instruct',\n"
        "    messages=[{'role': 'user', 'content': 'hi'}])\n"
        "chunks = [c.choices[0].delta.content for c in client.chat.completions.create(\n"
        "    model='SmolLM2-135M-Instruct', stream=True, messages=[{'role': 'user', 'content': 'hi'}])]\n"
        "aclient = openai.AsyncOpenAI(api_key=key, base_url=url)\n"
        "astream = await aclient.chat.completions.create(model='SmolLM2-135M-Instruct', stream=True,\n"
        "    messages=[{'role': 'user', 'content': 'hi'}])\n"
        "achunks = [c.choices[0].delta.content async for c in astream]\n"
        "[plain.choices[0].message.content, plain.usage.total_tokens, chunks, achunks]"
    )
    text, total, chunks, achunks = got
    assert text == "in the tab POST Bearer no-key-needed" and total == 4
    assert chunks == ["in ", "the ", "tab"] and achunks == chunks


def test_no_request_left_the_origin(tab):
    hosts = {u.split("/")[2].split(":")[0] for u in tab.requests if u.startswith("http")}
    assert hosts == {"127.0.0.1"}, hosts  # the site and the test's own loopback servers
