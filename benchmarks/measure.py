"""Timing one streamed answer, through a server or in-process, the same way on both sides.

Both sides are timed from the moment the request is made to each chunk that carries text, on
`time.perf_counter()`; a "token" is a chunk with text (llama-cpp-python sends one chunk a token, except
while it holds back bytes of an unfinished UTF-8 character or a possible stop string, which happens the
same way on both sides because both run the same `Llama.create_chat_completion`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUNED_SERVER = Path(__file__).resolve().parent / "tuned_server.py"


@dataclass
class Stream:
    """One streamed answer: when the request went out, and when each text chunk arrived (seconds)."""

    first: float | None  # time to the first text chunk
    total: float  # time to the end of the stream
    tokens: int  # text chunks
    decode_rate: float | None  # tokens/s after the first token: (tokens - 1) / (last - first)
    end_to_end_rate: float  # tokens / total
    gaps: list[float]  # seconds between consecutive text chunks
    finish_reason: str | None = None  # None: the stream ended without saying why (an error)
    error: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("gaps")
        return data


def timed(chunks: Iterable[tuple[str | None, str | None]], started: float) -> Stream:
    """Consume `chunks` ((text, finish_reason) of each chunk) and time them."""
    stamps: list[float] = []
    finish_reason = None
    for text, finished in chunks:
        if text:
            stamps.append(time.perf_counter())
        finish_reason = finished or finish_reason
    end = time.perf_counter()
    first = stamps[0] - started if stamps else None
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else None
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return Stream(first, end - started, len(stamps), rate, len(stamps) / (end - started), gaps, finish_reason)


def via_server(client, model: str, messages: list[dict], **params) -> Stream:
    """A streamed chat completion through an OpenAI-compatible server (the openai SDK, stream=True)."""
    started = time.perf_counter()
    stream = client.chat.completions.create(model=model, messages=messages, stream=True, **params)

    def chunks() -> Iterator[tuple[str | None, str | None]]:
        with stream:
            for chunk in stream:
                if chunk.choices:
                    yield chunk.choices[0].delta.content, chunk.choices[0].finish_reason

    return timed(chunks(), started)


def in_process(llm, messages: list[dict], **params) -> Stream:
    """The same request made in-process: `Llama.create_chat_completion(stream=True)`."""
    started = time.perf_counter()
    chunks = llm.create_chat_completion(messages=messages, stream=True, **params)
    return timed(((c["choices"][0]["delta"].get("content"), c["choices"][0]["finish_reason"])
                  for c in chunks if c["choices"]), started)


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


# --- servers started for an experiment ---------------------------------------------------------------

@dataclass
class Started:
    """A server this benchmark started itself (a tuned variant); stopped by `stop()`."""

    process: subprocess.Popen
    port: int
    key: str
    model: str
    variant: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def healthy(port: int, key: str, health_path: str) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{health_path}",
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_variant(variant: str, log: Path, timeout: float = 90.0) -> Started:
    """The embedded server's own command, run through benchmarks/tuned_server.py with one variant."""
    import secrets

    from akash_nb import local

    path = local.model_file()
    port = local._free_port()
    key = secrets.token_urlsafe(24)
    arguments = local.server_command(path, port)[3:]  # without "python -m akash_nb.local"
    command = [sys.executable, str(TUNED_SERVER), "--variant", variant, *arguments]
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    env[local.KEY_VARIABLE] = key
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    server = Started(process, port, key, local.model_name(path), variant)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {variant} server exited ({process.returncode}); log {log}")
        if healthy(port, key, local.HEALTH_PATH):
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"the {variant} server did not start in {timeout:g} s; log {log}")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, from /proc (None where there is no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def machine() -> dict:
    import platform

    import llama_cpp
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
        "llama_cpp_python": llama_cpp.__version__,
        "openai": openai.__version__,
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
