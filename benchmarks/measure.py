"""Timing streamed answers through a server, and running llama.cpp's own benchmark tools as floors.

A streamed answer is timed from the moment the request is made to each chunk that carries text, on
`time.perf_counter()`. Token counts come from the server's own `usage` (llama-server streams it when asked
with `stream_options.include_usage`), not from counting chunks; beside them it streams its own `timings`,
whose `predicted_per_second` is the engine's view of the same answer's decode rate.

The floors are llama.cpp's `llama-bench` and `llama-batched-bench` from the native build
(`build()` in _engine/builds.py; the prebuilt wheel has no such tools), on the same model file and threads:
what llama.cpp can do on this machine with no HTTP, no JSON and no client in the way.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stream:
    """One streamed answer: when the request went out, and when its text chunks arrived (seconds)."""

    started: float  # perf_counter when the request was made
    first: float | None  # time to the first text chunk
    total: float  # time to the end of the stream
    chunks: int  # chunks that carried text
    completion_tokens: int | None  # from the server's usage
    prompt_tokens: int | None
    cached_tokens: int | None
    decode_rate: float | None  # completion tokens/s after the first: (tokens - 1) / (last - first)
    finish_reason: str | None = None  # None: the stream ended without saying why (an error)
    # What the engine itself says of the same answer: llama-server's `timings.predicted_per_second`
    # (generated tokens over the time from the first sampled token to the last), in its usage chunk.
    engine_decode_rate: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


class _Timer:
    """Stamps the text chunks of one stream, fed either openai SDK chunks or the raw JSON of each event."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stamps: list[float] = []
        self.finish_reason: str | None = None
        self.usage: dict = {}
        self.timings: dict = {}

    def chunk(self, chunk) -> None:
        """An openai SDK chunk (`ChatCompletionChunk`): llama-server's `timings` is among its extra fields."""
        if chunk.usage is not None:
            self.usage = chunk.usage.model_dump()
        self.timings = (chunk.model_extra or {}).get("timings") or self.timings
        if chunk.choices:
            if chunk.choices[0].delta.content:
                self.stamps.append(time.perf_counter())
            self.finish_reason = chunk.choices[0].finish_reason or self.finish_reason

    def data(self, data: dict) -> None:
        """One server-sent event's JSON, as llama-server writes it."""
        self.usage = data.get("usage") or self.usage
        self.timings = data.get("timings") or self.timings
        choices = data.get("choices") or []
        if choices:
            if (choices[0].get("delta") or {}).get("content"):
                self.stamps.append(time.perf_counter())
            self.finish_reason = choices[0].get("finish_reason") or self.finish_reason

    def done(self) -> Stream:
        end = time.perf_counter()
        tokens = self.usage.get("completion_tokens")
        details = self.usage.get("prompt_tokens_details") or {}
        first = self.stamps[0] - self.started if self.stamps else None
        span = self.stamps[-1] - self.stamps[0] if len(self.stamps) > 1 else 0.0
        rate = (tokens - 1) / span if tokens and tokens > 2 and span > 0 else None
        return Stream(
            self.started,
            first,
            end - self.started,
            len(self.stamps),
            tokens,
            self.usage.get("prompt_tokens"),
            details.get("cached_tokens"),
            rate,
            self.finish_reason,
            self.timings.get("predicted_per_second"),
        )


STREAM_OPTIONS = {"include_usage": True}


def via_server(client, model: str, messages: list[dict], **params) -> Stream:
    """A streamed chat completion through an OpenAI-compatible server (the openai SDK, stream=True)."""
    timer = _Timer()
    stream = client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options=STREAM_OPTIONS, **params
    )
    with stream:
        for chunk in stream:
            timer.chunk(chunk)
    return timer.done()


async def via_server_async(client, model: str, messages: list[dict], **params) -> Stream:
    """The same with `openai.AsyncOpenAI`: many users from one event loop, for little client CPU."""
    timer = _Timer()
    stream: AsyncIterator = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options=STREAM_OPTIONS, **params
    )
    async for chunk in stream:
        timer.chunk(chunk)
    return timer.done()


async def via_http_async(client, url: str, key: str, body: dict) -> Stream:
    """The same request as raw HTTP (`httpx2.AsyncClient`, the SDK's transport, with none of the SDK's
    parsing): the lightest client, so comparing two engines measures the engines."""
    timer = _Timer()
    headers = {"Authorization": f"Bearer {key}"}
    payload = {**body, "stream": True, "stream_options": STREAM_OPTIONS}
    async with client.stream("POST", url + "/chat/completions", json=payload, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                timer.data(json.loads(line[6:]))
    return timer.done()


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The q-th percentile (0-100), linear between the closest ranks."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return statistics.quantiles(present, n=100, method="inclusive")[min(98, max(0, round(q) - 1))]


# --- llama.cpp's own tools: the floors --------------------------------------------------------------------


def _json_lines(text: str) -> Iterator[dict]:
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            yield json.loads(line)


def tool_env(spin: bool = False) -> dict[str, str]:
    """The environment llama.cpp's tools run in: the embedded server's wait policy, or OpenMP's spinning."""
    from akash_nb._engine import llama_server

    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    return env if spin else {**env, **llama_server.WAIT_POLICY}


def run_tool(command: list[str], spin: bool) -> subprocess.CompletedProcess[str]:
    """Run one of llama.cpp's tools to the end; a RuntimeError with its last words when it fails."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=tool_env(spin)
    )
    if done.returncode:
        raise RuntimeError(f"{Path(command[0]).name} exited {done.returncode}: {done.stderr[-400:]}")
    return done


def batched_bench(
    tool: Path,
    model: Path,
    *,
    prompt: int,
    generate: int,
    parallel: Iterable[int],
    context: int,
    threads: int,
    spin: bool = False,
) -> dict[int, dict]:
    """`llama-batched-bench`: N sequences of `prompt` tokens each, then `generate` tokens each, in lock step.

    Returns, per N, llama.cpp's own figures (t_pp, t_tg, t in seconds) and `aggregate_tok_s` = N·TG ÷ T:
    generated tokens over wall time, prompt processing included, as our users' aggregate is measured."""
    command = [
        str(tool),
        "-m",
        str(model),
        "-c",
        str(context),
        "-b",
        "2048",
        "-ub",
        "512",
        "-npp",
        str(prompt),
        "-ntg",
        str(generate),
        "-npl",
        ",".join(map(str, parallel)),
        "-t",
        str(threads),
        "-tb",
        str(threads),
        "--output-format",
        "jsonl",
    ]
    done = run_tool(command, spin)
    found = {}
    for row in _json_lines(done.stdout + "\n" + done.stderr):
        row["aggregate_tok_s"] = row["pl"] * row["tg"] / row["t"]
        found[int(row["pl"])] = row
    return found


def llama_bench_tg(tool: Path, model: Path, *, generate: int, threads: int, spin: bool = False) -> float:
    """`llama-bench`: tokens/s generating `generate` tokens for one sequence (no prompt), one repetition."""
    command = [
        str(tool),
        "-m",
        str(model),
        "-p",
        "0",
        "-n",
        str(generate),
        "-r",
        "1",
        "-t",
        str(threads),
        "-o",
        "jsonl",
    ]
    done = run_tool(command, spin)
    return next(row["avg_ts"] for row in _json_lines(done.stdout) if row.get("n_gen") == generate)


def timed_process(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=tool_env(), **kwargs
    )
    return time.perf_counter() - started, done


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, from /proc (None where there is no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def machine(engine_version: str) -> dict:
    import platform

    import openai

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "llama_server": engine_version,
        "openai": openai.__version__,
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
