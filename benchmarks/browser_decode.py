"""The in-browser model beside the native engine: decode tokens/s, first token and model load, one run.

    .venv/bin/python benchmarks/browser_decode.py              # 3 repetitions, 48-token answers
    .venv/bin/python benchmarks/browser_decode.py --reps 5 --tokens 64 --json build/bench/browser.json
    .venv/bin/python benchmarks/browser_decode.py --compat   # also wllama's compat build (no JSPI)

The same GGUF (akash_nb._engine.weights), the same chat template and prompt, streamed on both sides:
- in the browser: browser/bridge.js in a module Web Worker of headless Chromium on a loopback site
  (tests/bridge_page.py), one thread as on GitHub Pages (no cross-origin isolation). Times come from the
  worker's own clock as the bridge's chunks arrive. Model load: cold is the first load of a fresh browser
  profile (the download from loopback, then llama.cpp's load); warm is the same after a page reload (the
  file from the browser's storage).
- native: the package's engine (`find()` in _engine/builds.py: the xllamacpp wheel or a llama-server),
  started as llama_server.start() starts it, once with 1 thread (the fair comparison) and once with the
  package's own thread count; timed through the openai SDK (benchmarks/measure.py's via_server).

Decode tokens/s is (completion tokens - 1) / (last text chunk - first text chunk); first token is the time
from the request to its first text chunk; each repetition's prompt starts differently, so the prompt cache
holds only the chat template's system prefix. The repetitions alternate browser / native, so the drift of a
shared machine falls on both. Prints medians and the ratios native / browser.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bridge_page import BASE, CHROMIUM_ARGS, build, missing, serve  # noqa: E402
from browser_helpers import chromium  # noqa: E402

from akash_nb._core.api_key import Secret  # noqa: E402
from akash_nb._engine import builds as engines  # noqa: E402
from akash_nb._engine import llama_server, weights  # noqa: E402
from benchmarks.measure import Stream, via_server  # noqa: E402

STORY = "Tell me a long story about a lighthouse keeper and the sea."
OPENINGS = ["", "Please. ", "Now: ", "Again! ", "Once more. ", "Go on. ", "Next, ", "And then: "]


def messages(rep: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": OPENINGS[rep % len(OPENINGS)] + STORY}]


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# --- the browser side ---------------------------------------------------------------------------------------


class Browser:
    """Chromium on the loopback site, the bridge in a module worker."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.worker = "module"

    def open(self, worker: str = "module") -> float:
        """(Re)open the page, start the worker and load the model; the load's seconds in the worker.
        The worker "no-jspi" runs without JSPI, so wllama takes its compat build (as on Safari)."""
        self.page.goto(f"{self.origin}/index.html")
        self.worker = worker
        self.page.evaluate("(name) => startWorker('module', name)", worker)
        loaded = self.page.evaluate("(name) => call(name, 'load', [])", worker)
        assert loaded["status"]["compat"] is (worker == "no-jspi"), loaded
        return float(loaded["seconds"])

    def stream(self, rep: int, tokens: int) -> dict[str, Any]:
        body = {
            "messages": messages(rep),
            "max_tokens": tokens,
            "temperature": 0,
            "seed": 1,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        result = self.page.evaluate(
            "([name, url, body]) => call(name, 'request', ['POST', url, body, 0])",
            [self.worker, f"{BASE}/chat/completions", json.dumps(body)],
        )
        stamps: list[float] = []
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        for event in result["events"]:
            if event["data"] == "[DONE]":
                continue
            chunk = json.loads(event["data"])
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
            if (
                chunk["choices"]
                and chunk["choices"][0]["delta"].get("content")
                and "role" not in chunk["choices"][0]["delta"]
            ):
                stamps.append(event["at"])
        generated = usage.get("completion_tokens") or len(stamps)
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        return {
            "first": stamps[0] if stamps else None,
            "decode": (generated - 1) / span if generated > 2 and span > 0 else None,
            "engine_decode": timings.get("predicted_per_second"),
            "completion_tokens": generated,
            "prompt_tokens": usage.get("prompt_tokens"),
        }


@contextmanager
def browser_side(site_origin: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium()), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = launched.new_context()
            context.set_default_timeout(600_000)
            yield Browser(context.new_page(), site_origin)
        finally:
            launched.close()


# --- the native side ----------------------------------------------------------------------------------------


@contextmanager
def native_server(
    engine: engines.Engine, gguf: Path, threads: int, folder: Path
) -> Iterator[tuple[Any, float]]:
    """The engine's server on a free port with `threads` threads: (an openai client, seconds to ready)."""
    import openai

    port = llama_server.free_port()
    key = Secret(secrets.token_urlsafe(24))
    saved = llama_server.THREADS
    llama_server.THREADS = threads  # server_command reads it for --threads and --threads-batch
    began = time.perf_counter()
    try:
        process = llama_server.start(
            engine,
            gguf,
            port,
            key=key,
            key_file=folder / f"key-{threads}",
            log=folder / f"server-{threads}.log",
            timeout=llama_server.READY_TIMEOUT,
            slots=1,
        )
    finally:
        llama_server.THREADS = saved
    ready = time.perf_counter() - began
    try:
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key.reveal()), ready
    finally:
        llama_server.end(process)


def native_stream(client: Any, rep: int, tokens: int) -> dict[str, Any]:
    streamed: Stream = via_server(
        client,
        weights.model_name(weights.model_file()),
        messages(rep),
        max_tokens=tokens,
        temperature=0,
        seed=1,
    )
    return {
        "first": streamed.first,
        "decode": streamed.decode_rate,
        "engine_decode": streamed.engine_decode_rate,
        "completion_tokens": streamed.completion_tokens,
        "prompt_tokens": streamed.prompt_tokens,
    }


# --- the run ------------------------------------------------------------------------------------------------


def summary(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    return {key: median([run[key] for run in runs]) for key in ("first", "decode", "engine_decode")}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def show(label: str, value: float | None, unit: str) -> str:
    return f"{label:<44} {'-' if value is None else f'{value:8.2f}'} {unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="streamed answers per side (default 3)")
    parser.add_argument("--tokens", type=int, default=48, help="max_tokens of each answer (default 48)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--compat", action="store_true", help="also the compat build (no JSPI, as on Safari)")
    args = parser.parse_args(argv)

    problem = missing()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    engine = engines.find()
    if engine is None:
        print(
            "No native engine here: run `make engine` (or install the `local` extra) first.", file=sys.stderr
        )
        return 2
    gguf = weights.ensure()
    sides: dict[str, list[dict[str, Any]]] = {
        "browser": [],
        "native-1": [],
        f"native-{llama_server.THREADS}": [],
    }
    loads: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder, serve(build(Path(folder), gguf)) as site:
        work = Path(folder)
        with browser_side(site.origin) as browser:
            loads["browser cold"] = browser.open()
            loads["browser warm (page reloaded)"] = browser.open()
            browser.stream(99, 2)  # warms the wasm paths; not counted
            natives: dict[str, Callable[[int], dict[str, Any]]] = {}
            with native_server(engine, gguf, 1, work) as (one, ready_one):
                loads["native 1 thread (start to ready)"] = ready_one
                natives["native-1"] = lambda rep: native_stream(one, rep, args.tokens)
                native_stream(one, 99, 2)
                for rep in range(args.reps):
                    # alternate the order, so drift on the shared CPU falls on both sides
                    order = ["browser", "native-1"] if rep % 2 == 0 else ["native-1", "browser"]
                    for side in order:
                        run = browser.stream(rep, args.tokens) if side == "browser" else natives[side](rep)
                        sides[side].append(run)
            if args.compat:
                sides["browser-compat"] = []
                loads["browser compat (warm)"] = browser.open("no-jspi")
                browser.stream(99, 2)
                for rep in range(args.reps):
                    sides["browser-compat"].append(browser.stream(rep, args.tokens))
            default = f"native-{llama_server.THREADS}"
            with native_server(engine, gguf, llama_server.THREADS, work) as (many, ready_many):
                loads[f"native {llama_server.THREADS} threads (start to ready)"] = ready_many
                native_stream(many, 99, 2)
                for rep in range(args.reps):
                    sides[default].append(native_stream(many, rep, args.tokens))

    medians = {side: summary(runs) for side, runs in sides.items()}
    print(f"\nSmolLM2-135M-Instruct Q4_1, {args.tokens}-token answers, {args.reps} repetitions, medians")
    print(f"native engine: {engine.describe()}")
    for side, figures in medians.items():
        print(show(f"{side}: decode (client clock)", figures["decode"], "tok/s"))
        print(show(f"{side}: decode (llama.cpp's own timings)", figures["engine_decode"], "tok/s"))
        print(show(f"{side}: first token", figures["first"], "s"))
    for label, seconds in loads.items():
        print(show(f"load: {label}", seconds, "s"))
    ratios = {
        "decode native-1 / browser": ratio(medians["native-1"]["decode"], medians["browser"]["decode"]),
        f"decode {default} / browser": ratio(medians[default]["decode"], medians["browser"]["decode"]),
        "first token browser / native-1": ratio(medians["browser"]["first"], medians["native-1"]["first"]),
    }
    if "browser-compat" in medians:
        ratios["decode browser / browser-compat"] = ratio(
            medians["browser"]["decode"], medians["browser-compat"]["decode"]
        )
    for label, value in ratios.items():
        print(show(f"ratio: {label}", value, "x"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"runs": sides, "medians": medians, "loads": loads, "ratios": ratios}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
