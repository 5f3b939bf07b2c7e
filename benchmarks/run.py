"""`make bench`: how fast the lessons' moving parts are, each as a ratio to its floor, measured side by side.

    .venv/bin/python benchmarks/run.py                 # every section: one table, build/bench/results.json
                                                       # and build/bench/concurrency.png
    .venv/bin/python benchmarks/run.py --only engines,single   # some sections only (also BENCH_ONLY=...)
    BENCH_REPS=3 .venv/bin/python benchmarks/run.py    # fewer repetitions (default 5)

Every figure is a median over repetitions whose sides run interleaved (A, B, then B, A, ...) in this one
process, so the drift of a shared, noisy machine falls on every side alike. A ratio is the median of the
per-repetition ratios (each side divided by the floor measured in the same round).

The engine under test is the package's own choice (`engine.ensure()`: the prebuilt xllamacpp wheel unless
AKASH_NB_ENGINE or AKASH_NB_LLAMA_SERVER says otherwise). The floors are llama.cpp's own tools, which the
wheel does not carry, from the native build (`engine.build()` into `engine.build_dir()`, compiled here once
when missing, its minutes printed), on the same model file and threads (benchmarks/measure.py):
`llama-bench` for one stream, `llama-batched-bench` for N at once.

1. one stream: decode tokens/s of a 128-token answer through the notebooks' embedded server (the openai
   SDK, as a lesson streams) / the engine's own `timings.predicted_per_second` for the same answers; and
   the same / `llama-bench -n 128`.
2. first token of a short prompt (max_tokens=1) / `llama-batched-bench` with the same prompt length and one
   generated token (its T: prompt processing plus one token).
3. cold start: a fresh process and state folder, `akash_nb.client()` -> first streamed token (starting
   the engine's server included) / a fresh `llama-batched-bench` process loading the model -> one token.
4. slider-to-answer: `panel.temperature.value = t; panel.run()` -> 100-token answer shown / the same request
   streamed with the bare SDK.
5. a room: 1, 4, 16 and 32 users at once (`openai.AsyncOpenAI`, one event loop, so the load generator takes
   little of the 2 cores) on the class server's configuration (`akash-nb serve --share` defaults, bound to
   127.0.0.1 here) / `llama-batched-bench` with the same prompt length, 64 generated tokens and the same
   parallelism (N, at most the server's slots): N·TG ÷ T, prompt processing included, like ours.
6. suite: the exact nbval replay run of every lesson / plain `jupyter nbconvert --execute`; and `python -c
   "import akash_nb"` / `python -c pass`.
8. the room: 30 students running one lesson cell, arriving spread over 10 s, as a class does (lesson 02's
   guide call, and lesson 01's as written: no max_tokens, so the class server's cap ends it), and 60 over
   20 s, on the class server's defaults (benchmarks/room.py: async httpx2, one event loop) / one student
   alone on the same server, the same call with a nonce in front so no cached prompt helps it (the first
   token with nobody else asking).
7. engines: the prebuilt wheel's server / the native build's llama-server, both started as the package
   starts them (`llama_server.start`: same model file, threads, 16 slots, wait policy) and both up
   throughout: one 128-token stream's decode rate (the engine's `timings` and the client's stamps), and 16
   streams of 64 tokens at once (aggregate tokens/s), from raw `httpx2` requests on one event loop.

All traffic stays on 127.0.0.1; every server started here is stopped before exit (try/finally).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the suite's nbval command

import measure
import room as rooms
from measure import ROOT, Stream, median, percentile
from nbval_run import nbval_command

from akash_nb._core.api_key import Secret
from akash_nb._engine import builds as engines
from akash_nb._tools import notebooks

OUT = ROOT / "build" / "bench"
REPS = int(os.environ.get("BENCH_REPS", "5"))
MIN_REPS = max(1, min(3, REPS))
MAX_TOKENS = 128
USERS = (1, 4, 16, 32)
USERS_REPS = {1: 5, 4: 3, 16: 3, 32: 2}
USERS_MAX_TOKENS = 64
SLIDER_TOKENS = 100
TEMPERATURES = (0.2, 0.5, 0.8, 1.1, 0.3, 0.6, 0.9, 1.2)  # the slider moves before every run
STORY = "Write a long story about a lighthouse keeper and a storm."
SHORT = "Hello! Who are you?"
LESSONS = [str(p.relative_to(ROOT)) for p in notebooks.lessons(ROOT / "notebooks")]
NBVAL = nbval_command(*LESSONS)  # as make nbval-replay runs it

# Seconds each section may spend: after MIN_REPS it stops before a repetition that would overrun, so
# `make bench` ends within about 6 minutes on a busy machine.
BUDGET = {
    "import": 20,
    "suite": 90,
    "cold": 40,
    "single": 60,
    "ttft": 30,
    "slider": 40,
    "users": 150,
    "engines": 150,
}
# (label, students, spread in seconds, lesson): the rooms of issue 20's targets.
ROOMS = (
    ("room of 30, lesson 02's cell, arriving over 10 s", 30, 10.0, "02"),
    ("room of 30, lesson 01's guide call as written (no max_tokens), over 10 s", 30, 10.0, "01"),
    ("room of 60, lesson 02's cell, arriving over 20 s", 60, 20.0, "02"),
)
ROOM_ALONE_REPS = 3
ENGINES_STREAMS = 16  # the class server's slots: the prebuilt and the native engine each answer 16 at once


def messages(text: str, nonce: int | str) -> list[dict]:
    # A different first line every request, so no two requests are the same.
    return [{"role": "user", "content": f"Request {nonce}.\n{text}"}]


# llama-server reuses a cached prompt prefix (SmolLM2's template starts every prompt with the same system
# text), which llama.cpp's bench tools never do: figures compared with a floor turn the cache off.
NO_CACHE = {"cache_prompt": False}


@dataclass
class Section:
    """Repetitions of one section, cut at MIN_REPS once its time budget is spent."""

    name: str
    started: float = field(default_factory=time.monotonic)

    def reps(self, wanted: int = REPS):
        begun = time.monotonic()
        for i in range(wanted):
            spent = time.monotonic() - self.started
            if i >= MIN_REPS and spent + (time.monotonic() - begun) / i > BUDGET[self.name]:
                print(f"  ({self.name}: time budget spent, stopping at {i} repetitions)", flush=True)
                return
            yield i


def interleaved(
    section: Section, sides: dict[str, Callable[[int], object]], wanted: int = REPS
) -> dict[str, list]:
    """Run every side once a repetition, rotating the order each repetition."""
    names = list(sides)
    runs: dict[str, list] = {name: [] for name in names}
    for i in section.reps(wanted):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            runs[name].append(sides[name](i))
    return runs


def paired_ratio(values: list, floors: list) -> float | None:
    return median(v / f if v and f else None for v, f in zip(values, floors, strict=False))


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


@dataclass
class Floors:
    """The floors' tools: llama-bench and llama-batched-bench of the native build, the model, the threads."""

    version: str  # the native build's llama.cpp, as its llama-server --version says
    server: Path  # the native build's llama-server, the other side of the engines section
    bench: Path
    batched: Path
    model: Path
    threads: int
    built_s: float | None  # how long this run spent building them; None when they were there already


def native_build() -> tuple[Path, float | None]:
    """`engine.build_dir()`, with llama.cpp compiled into it now (`engine.build()`, under the cache's build
    lock as `engine.ensure()` takes it) when one of its tools is missing; and the seconds that took."""
    from filelock import FileLock

    from akash_nb._engine import builds as engines

    folder = engines.build_dir()

    def missing() -> list[str]:
        return [name for name in engines.TOOLS if not (folder / (name + engines.EXE)).is_file()]

    if not missing():
        return folder, None
    print(
        f"0. the floors' native build: {', '.join(missing())} not in {folder}; compiling llama.cpp from "
        f"{engines.SOURCE} once (5 to 8 min on 2 cores) ...",
        flush=True,
    )
    began = time.monotonic()
    engines.cache_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(engines.cache_dir() / "build.lock")):  # another process may be building it now
        if missing():
            engines.build()
    took = time.monotonic() - began
    print(f"   the native build took {took / 60:.1f} min", flush=True)
    return folder, took


# --- 6. suite and import --------------------------------------------------------------------------------


def timed_command(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return time.perf_counter() - started, done.returncode, tail


def bench_import(env: dict[str, str]) -> dict:
    section = Section("import")
    runs = interleaved(
        section,
        {
            "bare": lambda _i: timed_command([sys.executable, "-c", "pass"], env)[0],
            "import": lambda _i: timed_command([sys.executable, "-c", "import akash_nb"], env)[0],
        },
        wanted=max(REPS, 10),
    )
    extra = median(a - b for a, b in zip(runs["import"], runs["bare"], strict=False))
    return {
        "bare_s": runs["bare"],
        "import_s": runs["import"],
        "median_bare_s": median(runs["bare"]),
        "median_import_s": median(runs["import"]),
        "median_extra_s": extra,
    }


def bench_suite(env: dict[str, str], scratch: Path) -> dict:
    section = Section("suite")
    replay = {**env, "AKASH_NB_PROVIDER": "replay"}
    out = scratch / "nbconvert"
    failures: list[str] = []

    def nbval(_i: int) -> float:
        took, code, tail = timed_command(NBVAL, replay)
        if code:
            failures.append(f"nbval exited {code}: {tail}")
        return took

    def nbconvert(_i: int) -> float:
        command = [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--output-dir",
            str(out),
            *LESSONS,
        ]
        took, code, tail = timed_command(command, replay)
        if code:
            failures.append(f"nbconvert exited {code}: {tail}")
        return took

    runs = interleaved(section, {"nbval": nbval, "nbconvert": nbconvert}, wanted=3)
    return {
        "nbval_s": runs["nbval"],
        "nbconvert_s": runs["nbconvert"],
        "median_nbval_s": median(runs["nbval"]),
        "median_nbconvert_s": median(runs["nbconvert"]),
        "ratio": paired_ratio(runs["nbval"], runs["nbconvert"]),
        "failures": failures,
        "lessons": LESSONS,
    }


# --- 3. cold start --------------------------------------------------------------------------------------

COLD_CLIENT = """
import json, time
started = time.monotonic()
import akash_nb
from akash_nb._engine import embedded as local
from akash_nb._core.providers import LOCAL_MODEL_NAME
imported = time.monotonic()
try:
    client = akash_nb.client("local", show=False)
    made = time.monotonic()
    stream = client.chat.completions.create(model=LOCAL_MODEL_NAME, max_tokens=1, stream=True,
                                            messages=[{"role": "user", "content": "Hello!"}])
    first = None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.monotonic()
    print(json.dumps({"started": started, "imported": imported, "client": made, "first": first}))
finally:
    local.stop()
"""


def _stop_leftover(state: Path) -> None:
    """A child that died before its own local.stop(): end the servers its state folder names."""
    from akash_nb._engine import embedded as local

    previous = os.environ.get("AKASH_NB_STATE_DIR")
    os.environ["AKASH_NB_STATE_DIR"] = str(state)
    try:
        local.stop_all()
    finally:
        if previous is not None:
            os.environ["AKASH_NB_STATE_DIR"] = previous


def bench_cold(env: dict[str, str], scratch: Path, floors: Floors) -> dict:
    section = Section("cold")
    errors: list[str] = []

    def client_side(i: int) -> dict | None:
        state = scratch / f"cold-state-{i}"
        child_env = {**env, "AKASH_NB_STATE_DIR": str(state), "AKASH_NB_PROVIDER": "local"}
        launched = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-c", COLD_CLIENT],
                cwd=scratch,
                env=child_env,
                capture_output=True,
                text=True,
                timeout=150,
            )
        finally:
            _stop_leftover(state)
        if done.returncode:
            errors.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output")
            return None
        t = json.loads(done.stdout.strip().splitlines()[-1])
        return {
            "client_to_first_s": t["first"] - t["imported"],
            "client_s": t["client"] - t["imported"],
            "first_request_s": t["first"] - t["client"],
            "interpreter_and_import_s": t["imported"] - launched,
        }

    def floor_side(_i: int) -> float | None:
        took, done = measure.timed_process(
            [
                str(floors.batched),
                "-m",
                str(floors.model),
                "-c",
                "4096",
                "-npp",
                "8",
                "-ntg",
                "1",
                "-npl",
                "1",
                "-t",
                str(floors.threads),
                "-tb",
                str(floors.threads),
                "--output-format",
                "jsonl",
            ]
        )
        if done.returncode:
            errors.append(f"llama-batched-bench exited {done.returncode}")
            return None
        return took

    runs = interleaved(section, {"client": client_side, "floor": floor_side}, wanted=5)
    value = [r["client_to_first_s"] if r else None for r in runs["client"]]
    return {
        "client": runs["client"],
        "floor_s": runs["floor"],
        "errors": errors,
        "median_client_to_first_s": median(value),
        "median_floor_s": median(runs["floor"]),
        "ratio": paired_ratio(value, runs["floor"]),
        "median_parts": {
            k: median(r[k] for r in runs["client"] if r)
            for k in ("client_s", "first_request_s", "interpreter_and_import_s")
        },
    }


# --- 1, 2, 4: the notebooks' embedded server --------------------------------------------------------------


def bench_single(client, model: str, floors: Floors) -> dict:
    section = Section("single")
    runs = interleaved(
        section,
        {
            "server": lambda i: measure.via_server(
                client,
                model,
                messages(STORY, f"o{i}"),
                max_tokens=MAX_TOKENS,
                temperature=0,
                extra_body={"ignore_eos": True, **NO_CACHE},
            ),
            "floor": lambda _i: measure.llama_bench_tg(
                floors.bench, floors.model, generate=MAX_TOKENS, threads=floors.threads
            ),
            "spinning": lambda _i: measure.llama_bench_tg(
                floors.bench, floors.model, generate=MAX_TOKENS, threads=floors.threads, spin=True
            ),
        },
    )
    rates = [r.decode_rate for r in runs["server"]]
    reported = [r.engine_decode_rate for r in runs["server"]]
    return {
        "server_tok_s": median(rates),
        "engine_tok_s": median(reported),
        "over_engine": paired_ratio(rates, reported),  # the same answers, seen by the client ÷ by the engine
        "floor_tok_s": median(runs["floor"]),
        "ratio": paired_ratio(rates, runs["floor"]),
        "spinning_tok_s": median(runs["spinning"]),
        "passive_over_spinning": paired_ratio(runs["floor"], runs["spinning"]),
        "tokens": sorted({r.completion_tokens for r in runs["server"]}),
        "runs": [r.to_json() for r in runs["server"]],
        "floor_runs": runs["floor"],
    }


def bench_ttft(client, model: str, floors: Floors) -> dict:
    section = Section("ttft")
    probe = measure.via_server(client, model, messages(SHORT, "probe"), max_tokens=1, temperature=0)
    prompt = probe.prompt_tokens or 30

    def floor(_i: int) -> float:
        rows = measure.batched_bench(
            floors.batched,
            floors.model,
            prompt=prompt,
            generate=1,
            parallel=[1],
            context=4096,
            threads=floors.threads,
        )
        return rows[1]["t"]

    runs = interleaved(
        section,
        {
            "server": lambda i: (
                measure.via_server(
                    client, model, messages(SHORT, f"t{i}"), max_tokens=1, temperature=0, extra_body=NO_CACHE
                ).first
            ),
            "floor": floor,
        },
        wanted=max(REPS, 7),
    )
    return {
        "prompt_tokens": prompt,
        "server_s": median(runs["server"]),
        "floor_s": median(runs["floor"]),
        "ratio": paired_ratio(runs["server"], runs["floor"]),
        "runs": runs,
    }


def bench_slider(client, model: str) -> dict:
    import akash_nb

    section = Section("slider")
    panel = akash_nb.panel(akash_nb.client("local", show=False), STORY, max_tokens=SLIDER_TOKENS)

    def run_panel(i: int) -> dict:
        panel.prompt.value = f"Request s{i}.\n{STORY}"
        panel.temperature.value = TEMPERATURES[i % len(TEMPERATURES)]
        started = time.perf_counter()
        result = panel.run()
        took = time.perf_counter() - started
        tokens = result.usage.completion_tokens if result.usage else None
        return {
            "s": took,
            "tokens": tokens,
            "finish_reason": result.finish_reason,
            "first_token_s": result.first_token_seconds,
            "error": result.error,
            "shown": panel.answer.value == result.answer_html(),
        }

    def run_floor(i: int) -> dict:
        r = measure.via_server(
            client,
            model,
            messages(STORY, f"s{i}"),
            max_tokens=SLIDER_TOKENS,
            temperature=TEMPERATURES[i % len(TEMPERATURES)],
        )
        return {"s": r.total, "tokens": r.completion_tokens}

    run_panel(-1)  # the first run of a panel pays for imports (mistune's renderer): not what a slider costs
    runs = interleaved(section, {"panel": run_panel, "sdk": run_floor})
    per_token = [r["s"] / r["tokens"] if r["tokens"] else None for r in runs["panel"]]
    floor_per_token = [r["s"] / r["tokens"] if r["tokens"] else None for r in runs["sdk"]]
    return {
        "panel": runs["panel"],
        "sdk": runs["sdk"],
        "median_s": median(r["s"] for r in runs["panel"]),
        "median_floor_s": median(r["s"] for r in runs["sdk"]),
        "ratio": paired_ratio(per_token, floor_per_token),  # per token: answers differ in length
        "per_100_tokens_s": median(p * SLIDER_TOKENS for p in per_token if p),
        "errors": [r["error"] for r in runs["panel"] if r["error"]],
        "all_shown": all(r["shown"] for r in runs["panel"]),
    }


# --- 5. a room: many users at once on the class server ----------------------------------------------------


async def _room(url: str, key: str, model: str, users: int, rep: int) -> dict:
    import openai

    async with openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=300.0) as client:

        async def one(j: int) -> Stream | str:
            try:
                return await measure.via_server_async(
                    client,
                    model,
                    messages(STORY, f"u{users}-{rep}-{j}"),
                    max_tokens=USERS_MAX_TOKENS,
                    temperature=0,
                    extra_body={"ignore_eos": True, **NO_CACHE},
                )
            except Exception as exc:  # noqa: BLE001 — every failure is counted and reported
                return f"client {j}: {type(exc).__name__}: {exc}"

        began = time.perf_counter()
        results = await asyncio.gather(*(one(j) for j in range(users)))
        wall = time.perf_counter() - began
    done = [r for r in results if isinstance(r, Stream)]
    errors = [r for r in results if isinstance(r, str)]
    errors += [f"stream {k} ended without a finish_reason" for k, r in enumerate(done) if not r.finish_reason]
    tokens = sum(r.completion_tokens or 0 for r in done)
    return {
        "users": users,
        "wall_s": wall,
        "tokens": tokens,
        "aggregate_tok_s": tokens / wall,
        "ttft_s": [r.first for r in done],
        "prompt_tokens": median(r.prompt_tokens for r in done),
        "errors": errors,
    }


def bench_users(url: str, key: str, model: str, slots: int, floors: Floors) -> dict:
    section = Section("users")
    prompt = asyncio.run(_room(url, key, model, 1, -1))["prompt_tokens"] or 40  # also warms the server
    result: dict = {"prompt_tokens": prompt, "slots": slots}
    for users in USERS:
        parallel = min(users, slots)
        rounds: list[dict] = []
        floor_rates: list[float] = []
        prompt_phase: list[float] = []

        def server_side(rep: int, users: int = users, rounds: list = rounds) -> None:
            rounds.append(asyncio.run(_room(url, key, model, users, rep)))

        spinning: list[float] = []

        def floor_side(
            _rep: int,
            parallel: int = parallel,
            floor_rates: list = floor_rates,
            spinning: list = spinning,
            users: int = users,
            prompt_phase: list = prompt_phase,
        ) -> None:
            def aggregate(spin: bool) -> float:
                found = measure.batched_bench(
                    floors.batched,
                    floors.model,
                    prompt=prompt,
                    generate=USERS_MAX_TOKENS,
                    parallel=[parallel],
                    context=slots * 4096,
                    threads=floors.threads,
                    spin=spin,
                )
                if not spin:  # llama.cpp's own time to read every prompt of the burst (its t_pp)
                    prompt_phase.append(found[parallel]["t_pp"])
                return found[parallel]["aggregate_tok_s"]

            floor_rates.append(aggregate(spin=False))
            if users == 16:  # the same with OpenMP spinning, for the wait-policy choice
                spinning.append(aggregate(spin=True))

        for rep in range(USERS_REPS[users]):
            if rep >= 1 and time.monotonic() - section.started > BUDGET["users"]:
                print(f"  (users: time budget spent, {users} users at {rep} rounds)", flush=True)
                break
            sides = [server_side, floor_side]
            for side in sides[rep % 2 :] + sides[: rep % 2]:
                side(rep)
        ttft = [t for r in rounds for t in r["ttft_s"]]
        rates = [r["aggregate_tok_s"] for r in rounds]
        result[str(users)] = {
            "rounds": len(rounds),
            "aggregate_tok_s": median(rates),
            "floor_tok_s": median(floor_rates),
            "floor_parallel": parallel,
            "ratio": paired_ratio(rates, floor_rates),
            "ttft_p50_s": percentile(ttft, 50),
            "ttft_p95_s": percentile(ttft, 95),
            "errors": [e for r in rounds for e in r["errors"]],
            "raw": rounds,
            "floor_raw": floor_rates,
            "spinning_floor_tok_s": median(spinning),
            "floor_prompt_phase_s": median(prompt_phase),
        }
    return result


def plot_users(users: dict, path: Path, engine: engines.Engine) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [n for n in USERS if str(n) in users]
    fig, rate_axis = plt.subplots(figsize=(5.2, 3.3), dpi=100)
    latency_axis = rate_axis.twinx()
    lines = (  # axis, figure, style, colour, opacity, label
        (rate_axis, "aggregate_tok_s", "o-", "tab:blue", 1.0, "class server: tokens/s"),
        (rate_axis, "floor_tok_s", "o:", "tab:blue", 0.6, "llama-batched-bench (floor)"),
        (latency_axis, "ttft_p95_s", "s--", "tab:red", 1.0, "class server: p95 first token"),
    )
    for axis, figure, style, colour, opacity, label in lines:
        axis.plot(ns, [users[str(n)][figure] for n in ns], style, color=colour, alpha=opacity, label=label)
    rate_axis.set_xscale("log", base=2)
    rate_axis.set_xticks(ns, [str(n) for n in ns])
    rate_axis.set_xlabel("users at once")
    rate_axis.set_ylabel("aggregate tokens/s", color="tab:blue")
    latency_axis.set_ylabel("p95 time to first token (s)", color="tab:red")
    rate_axis.set_ylim(bottom=0)
    latency_axis.set_ylim(bottom=0)
    handles = rate_axis.get_legend_handles_labels()[0] + latency_axis.get_legend_handles_labels()[0]
    rate_axis.legend(handles=handles, fontsize=7, loc="lower right")
    rate_axis.set_title(
        f"llama.cpp {engine.version.split()[0]}, {users['slots']} slots, {USERS_MAX_TOKENS}-token answers, "
        f"{os.cpu_count()} cores",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- 7. the engines: the prebuilt wheel beside a native build of llama.cpp --------------------------------


@dataclass
class Served:
    """One engine's server, started as the package starts it (`llama_server.start`)."""

    engine: engines.Engine
    process: subprocess.Popen[bytes]
    url: str
    key: str
    model: str


def serve(engine: engines.Engine, floors: Floors, slots: int, folder: Path) -> Served:
    """Start `engine` on the floors' model with `slots` slots, on a free port of 127.0.0.1."""
    from akash_nb._engine import llama_server
    from akash_nb._engine.weights import model_name

    folder.mkdir(parents=True, exist_ok=True)
    key = Secret(secrets.token_urlsafe(24))
    port = llama_server.free_port()
    process = llama_server.start(
        engine,
        floors.model,
        port,
        slots=slots,
        key=key,
        key_file=folder / "server.key",
        log=folder / "server.log",
        timeout=llama_server.READY_TIMEOUT,
    )
    return Served(engine, process, f"http://127.0.0.1:{port}/v1", key.reveal(), model_name(floors.model))


async def _streams(served: Served, n: int, max_tokens: int, nonce: str) -> dict:
    """`n` answers at once from `served`, raw streamed requests on one `httpx2.AsyncClient`: their wall time,
    tokens, aggregate tokens/s and `Stream`s."""
    import httpx2

    limits = httpx2.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx2.AsyncClient(timeout=300.0, limits=limits) as client:

        def body(j: int) -> dict:
            return {
                "model": served.model,
                "messages": messages(STORY, f"{nonce}-{j}"),
                "max_tokens": max_tokens,
                "temperature": 0,
                "ignore_eos": True,
                **NO_CACHE,
            }

        began = time.perf_counter()
        done = await asyncio.gather(
            *(measure.via_http_async(client, served.url, served.key, body(j)) for j in range(n))
        )
        wall = time.perf_counter() - began
    tokens = sum(r.completion_tokens or 0 for r in done)
    return {
        "wall_s": wall,
        "tokens": tokens,
        "aggregate_tok_s": tokens / wall,
        "streams": done,
        "unfinished": sum(1 for r in done if not r.finish_reason),
    }


def bench_engines(floors: Floors, prebuilt: engines.Engine, native: engines.Engine, scratch: Path) -> dict:
    """The prebuilt engine ÷ the native build, both started as the package starts its servers (same model
    file, threads, slots and wait policy), both running throughout, their rounds interleaved: one stream's
    decode rate, as the engine reports it and as a light client sees it; and 16 streams at once."""
    from akash_nb._engine import class_server as share
    from akash_nb._engine import llama_server

    section = Section("engines")
    slots = share.SHARE_SLOTS
    sides = {"prebuilt": prebuilt, "native": native}
    servers: dict[str, Served] = {}
    try:
        for name, engine in sides.items():
            servers[name] = serve(engine, floors, slots, scratch / f"engine-{name}")
        for name in sides:  # untimed warm-up
            asyncio.run(_streams(servers[name], 1, 8, f"warm-{name}"))

        def one(name: str) -> Callable[[int], Stream]:  # both sides get the same prompt each round
            return lambda i: asyncio.run(_streams(servers[name], 1, MAX_TOKENS, f"e1-{i}"))["streams"][0]

        single = interleaved(section, {name: one(name) for name in sides})

        def many(name: str) -> Callable[[int], dict]:
            return lambda i: asyncio.run(
                _streams(servers[name], ENGINES_STREAMS, USERS_MAX_TOKENS, f"e16-{i}")
            )

        aggregate = interleaved(section, {name: many(name) for name in sides}, wanted=3)
    finally:
        for served in servers.values():
            llama_server.end(served.process)

    def rates(name: str, view: str) -> list[float | None]:
        """One side's decode rates: the engine's own `timings` ("engine") or the client's stamps."""
        return [r.engine_decode_rate if view == "engine" else r.decode_rate for r in single[name]]

    result: dict = {
        "slots": slots,
        "engines": {name: engine.describe() for name, engine in sides.items()},
        "single": {},
        "aggregate": {},
    }
    for name in sides:
        result["single"][name] = {
            "engine_tok_s": median(rates(name, "engine")),
            "client_tok_s": median(rates(name, "client")),
            "client_over_engine": paired_ratio(rates(name, "client"), rates(name, "engine")),
            "runs": [r.to_json() for r in single[name]],
        }
        result["aggregate"][name] = {
            "aggregate_tok_s": median(r["aggregate_tok_s"] for r in aggregate[name]),
            "unfinished": sum(r["unfinished"] for r in aggregate[name]),
            "rounds": [{k: v for k, v in r.items() if k != "streams"} for r in aggregate[name]],
        }
    result["single"]["engine_ratio"] = paired_ratio(rates("prebuilt", "engine"), rates("native", "engine"))
    result["single"]["client_ratio"] = paired_ratio(rates("prebuilt", "client"), rates("native", "client"))
    result["aggregate"]["ratio"] = paired_ratio(
        [r["aggregate_tok_s"] for r in aggregate["prebuilt"]],
        [r["aggregate_tok_s"] for r in aggregate["native"]],
    )
    result["aggregate"]["streams"] = ENGINES_STREAMS
    return result


# --- the table ------------------------------------------------------------------------------------------


def rows(r: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, value, floor, ratio, target, met?) for every figure in the results."""
    out = []

    def row(figure, value, floor, ratio, target, met):
        met_text = "—" if met is None else "yes" if met else "NO"
        out.append((figure, value, floor, "—" if ratio is None else f"{ratio:.2f}", target, met_text))

    def within(figure: str, section: dict, key: str, limit: float) -> None:
        """The median time at `key` against its floor: met at `limit` seconds or less, with no errors."""
        v = section[key]
        met = v is not None and v <= limit and not section["errors"]
        row(figure, seconds(v), seconds(section["median_floor_s"]), section["ratio"], f"≤ {limit:g} s", met)

    if (built := r.get("native_build") or {}).get("built_now_s") is not None:
        row(
            f"the floors' native build (engine.build(), llama.cpp {built['version']}), compiled in this run",
            f"{built['built_now_s'] / 60:.1f} min",
            "—",
            None,
            "once",
            None,
        )
    if s := r.get("single"):
        row(
            "one stream, decode through the notebooks' server (the engine's own timings, same answers)",
            f"{s['server_tok_s']:.0f} tok/s",
            f"{s['engine_tok_s']:.0f} tok/s",
            s["over_engine"],
            "≥ 0.95",
            (s["over_engine"] or 0) >= 0.95,
        )
        row(
            "one stream, decode tok/s (native llama-bench tg)",
            f"{s['server_tok_s']:.0f} tok/s",
            f"{s['floor_tok_s']:.0f} tok/s",
            s["ratio"],
            "report",
            None,
        )
        row(
            "  the same floor with OpenMP spinning (reference: the server waits passively)",
            f"{s['spinning_tok_s']:.0f} tok/s",
            f"{s['floor_tok_s']:.0f} tok/s",
            s["passive_over_spinning"],
            "report",
            None,
        )
    if t := r.get("ttft"):
        row(
            f"first token, {t['prompt_tokens']}-token prompt (batched-bench T)",
            seconds(t["server_s"]),
            seconds(t["floor_s"]),
            t["ratio"],
            "≤ 1.2",
            (t["ratio"] or 9) <= 1.2,
        )

    if c := r.get("cold"):
        within(
            "cold start: client() → first token (a fresh tool process)", c, "median_client_to_first_s", 3.0
        )
    if s := r.get("slider"):
        within(
            f"slider → {SLIDER_TOKENS}-token answer in the panel (bare SDK stream, per token)",
            s,
            "median_s",
            1.5,
        )
    if u := r.get("users"):
        one = (u.get("1") or {}).get("aggregate_tok_s")
        for n in USERS:
            x = u.get(str(n))
            if not x:
                continue
            target = "≥ 0.9" if n == 16 else "report"
            row(
                f"{n} users at once, aggregate tok/s (batched-bench, {x['floor_parallel']} parallel)",
                f"{x['aggregate_tok_s']:.0f} tok/s",
                f"{x['floor_tok_s']:.0f} tok/s",
                x["ratio"],
                target,
                (x["ratio"] or 0) >= 0.9 if n == 16 else None,
            )
            phase = x.get("floor_prompt_phase_s")
            over_phase = x["ttft_p95_s"] / phase if phase and x["ttft_p95_s"] is not None else None
            row(
                f"{n} users at once, first token p50 / p95 (batched-bench's prompt phase for {n} prompts)",
                f"{seconds(x['ttft_p50_s'])} / {seconds(x['ttft_p95_s'])}",
                seconds(phase),
                over_phase,
                "p95 ≤ 1.2 × prompt phase" if n == 16 else "report",
                (over_phase or 9) <= 1.2 if n == 16 else None,
            )
            if x.get("spinning_floor_tok_s"):
                row(
                    f"  {n} at once, batched-bench with OpenMP spinning (reference)",
                    f"{x['spinning_floor_tok_s']:.0f} tok/s",
                    f"{x['floor_tok_s']:.0f} tok/s",
                    x["spinning_floor_tok_s"] / x["floor_tok_s"],
                    "report",
                    None,
                )
            if n == 16 and one:
                gain = x["aggregate_tok_s"] / one
                row(
                    "16 users: aggregate / one user's rate",
                    f"{gain:.2f}×",
                    f"{one:.0f} tok/s",
                    gain,
                    "≥ 1.5",
                    gain >= 1.5,
                )
        errors = sum(len(u[str(n)]["errors"]) for n in USERS if str(n) in u)
        row("errors, every round of every room size", str(errors), "—", None, "0", errors == 0)
    if room := r.get("room"):
        for label, students, _spread, lesson in ROOMS:
            x = room.get(label)
            if not x:
                continue
            first, total = x["first_token_s"], x["total_s"]
            alone = x["alone_first_s"]
            ratio = first["p95"] / alone if first["p95"] is not None and alone else None
            errors = len(x["errors"])
            if students == 60:
                target, met = "0 errors", errors == 0
            elif lesson == "01":
                met = errors == 0 and (first["p95"] or 99) <= 2.0 and (total["max"] or 999) <= 60
                target = "p95 ≤ 2 s, all done ≤ 60 s, 0 errors"
            else:
                target, met = "p95 ≤ 1.5 s, 0 errors", errors == 0 and (first["p95"] or 99) <= 1.5
            row(
                f"{label}: first token p50 / p95, last answer done, errors (one student alone, p95 over it)",
                f"{seconds(first['p50'])} / {seconds(first['p95'])}, {seconds(total['max'])}, {errors}",
                seconds(alone),
                ratio,
                target,
                met,
            )
            rate = x["student_tok_s"]["p50"]
            row(
                f"  {students} students: per-student tok/s (median), aggregate, engine memory",
                f"{rate or 0:.1f} tok/s, {x['aggregate_tok_s']:.0f} tok/s, {x['engine_rss_mb'] or 0:.0f} MB",
                "—",
                None,
                "report",
                None,
            )
    if e := r.get("engines"):
        one, many = e["single"], e["aggregate"]
        for view, label in (("engine", "the engines' own timings"), ("client", "seen by the client")):
            row(
                f"prebuilt ÷ native engine: one stream, decode tok/s ({label})",
                f"{one['prebuilt'][view + '_tok_s']:.0f} tok/s",
                f"{one['native'][view + '_tok_s']:.0f} tok/s",
                one[view + "_ratio"],
                "report",
                None,
            )
        row(
            f"prebuilt ÷ native engine: {many['streams']} streams at once, aggregate tok/s",
            f"{many['prebuilt']['aggregate_tok_s']:.0f} tok/s",
            f"{many['native']['aggregate_tok_s']:.0f} tok/s",
            many["ratio"],
            "report",
            None,
        )
        unfinished = many["prebuilt"]["unfinished"] + many["native"]["unfinished"]
        row("  streams that ended without a finish_reason", str(unfinished), "—", None, "0", unfinished == 0)
    if suite := r.get("suite"):
        ratio = suite["ratio"]
        row(
            "nbval replay of every lesson (nbconvert --execute)",
            seconds(suite["median_nbval_s"]),
            seconds(suite["median_nbconvert_s"]),
            ratio,
            "≤ 1.5, ≤ 60 s",
            ratio is not None and ratio <= 1.5 and suite["median_nbval_s"] <= 60 and not suite["failures"],
        )
    if i := r.get("import"):
        extra = i["median_extra_s"]
        row(
            "import akash_nb, extra over python -c pass",
            f"+{extra * 1000:.0f} ms",
            f"{i['median_bare_s'] * 1000:.0f} ms",
            None,
            "≤ 150 ms",
            extra <= 0.150,
        )
    return out


def print_table(table: list[tuple[str, ...]]) -> None:
    header = ("figure", "value", "floor", "ratio", "target", "met?")
    widths = [max(len(x[k]) for x in (header, *table)) for k in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    print("-+-".join("-" * w for w in widths))
    for x in table:
        print(" | ".join(v.ljust(w) for v, w in zip(x, widths, strict=False)))


# --- main -----------------------------------------------------------------------------------------------


# Engine settings stay (which engine to bench is the point); provider settings and keys go.
KEPT_SETTINGS = ("AKASH_NB_ENGINE", "AKASH_NB_LLAMA_SERVER", "AKASH_NB_CACHE_DIR")


def clean_environment(state: Path) -> dict[str, str]:
    """This process's environment without any provider setting, with a private state folder."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (k in KEPT_SETTINGS or not k.startswith("AKASH")) and not k.endswith("API_KEY")
    }
    env["AKASH_NB_STATE_DIR"] = str(state)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    os.environ.clear()
    os.environ.update(env)
    return env


@dataclass
class Bench:
    """What the sections share: the clean environment, a scratch folder, the floors, the engine under
    test (the package's own choice, the prebuilt wheel by default), and the results so far."""

    env: dict[str, str]
    scratch: Path
    engine: engines.Engine
    results: dict

    @functools.cached_property
    def floors(self) -> Floors:
        """The native build's tools, compiled at the first section that needs them if they are missing."""
        from akash_nb._engine import llama_server
        from akash_nb._engine import weights as model

        folder, built_s = native_build()
        server = folder / f"llama-server{engines.EXE}"
        floors = Floors(
            engines.version_of(server) or "unknown",
            server,
            folder / f"llama-bench{engines.EXE}",
            folder / f"llama-batched-bench{engines.EXE}",
            model.ensure(),
            llama_server.THREADS,
            built_s,
        )
        print(f"floors: {engines.SOURCE}'s llama.cpp ({floors.version}), built in {folder}", flush=True)
        self.results["native_build"] = {
            "source": engines.SOURCE,
            "folder": str(folder),
            "version": floors.version,
            "built_now_s": built_s,
        }
        return floors


def run_import(bench: Bench, names: set[str]) -> None:
    print("6. import akash_nb ...", flush=True)
    bench.results["import"] = bench_import(bench.env)


def run_suite(bench: Bench, names: set[str]) -> None:
    print("6. the suite (nbval replay) ...", flush=True)
    bench.results["suite"] = bench_suite(bench.env, bench.scratch)


def run_cold(bench: Bench, names: set[str]) -> None:
    print("3. cold start ...", flush=True)
    bench.results["cold"] = bench_cold(bench.env, bench.scratch, bench.floors)


def run_notebooks_server(bench: Bench, names: set[str]) -> None:
    """Sections 1, 2 and 4 on one notebooks' server (`local.ensure_server()`, as a lesson gets it)."""
    import openai

    from akash_nb._engine import embedded as local

    server = local.ensure_server()
    try:
        client = openai.OpenAI(
            base_url=server.base_url, api_key=server.key.reveal(), max_retries=0, timeout=300.0
        )
        measure.via_server(client, server.model, messages("Hi", "warm"), max_tokens=4)  # untimed warm-up
        if "single" in names:
            print("1. one stream ...", flush=True)
            bench.results["single"] = bench_single(client, server.model, bench.floors)
        if "ttft" in names:
            print("2. first token ...", flush=True)
            bench.results["ttft"] = bench_ttft(client, server.model, bench.floors)
        if "slider" in names:
            print("4. slider-to-answer ...", flush=True)
            bench.results["slider"] = bench_slider(client, server.model)
    finally:
        local.stop()  # the next section's server gets the cores to itself


def run_users(bench: Bench, names: set[str]) -> None:
    from akash_nb._engine import class_server as share
    from akash_nb._engine import llama_server

    print("5. a room: 1, 4, 16, 32 users at once ...", flush=True)
    shared = share.start_share(port=llama_server.free_port(), host="127.0.0.1")
    try:
        users = bench_users(shared.url(), shared.key.reveal(), shared.model, shared.slots, bench.floors)
        users["server_rss_mb"] = measure.rss_mb(shared.process.pid)
    finally:
        share.stop_share(shared)
    bench.results["users"] = users
    plot_users(users, OUT / "concurrency.png", bench.engine)


def run_engines(bench: Bench, names: set[str]) -> None:
    prebuilt = engines.wheel_engine()
    if prebuilt is None:
        print(f"7. the engines: skipped, {engines.wheel_problem() or 'the prebuilt engine cannot run here'}.")
        return
    native = engines.Engine(bench.floors.server, "cache", bench.floors.version)
    print(f"7. the engines: {prebuilt.describe()} ÷ {native.describe()} ...", flush=True)
    bench.results["engines"] = bench_engines(bench.floors, prebuilt, native, bench.scratch)


def bench_room(url: str, key: str, model: str, pid: int) -> dict:
    """Each room of ROOMS on one class server, after its call sent by one student alone (the floor)."""
    out: dict = {}
    for label, students, spread, lesson in ROOMS:
        body = {"messages": rooms.LESSONS[lesson]}
        alone = []
        for rep in range(ROOM_ALONE_REPS + 1):  # the first warms the server; a nonce defeats the prompt cache
            unique = [*body["messages"][:-1], dict(body["messages"][-1])]
            unique[-1]["content"] = f"({secrets.token_hex(2)}) {unique[-1]['content']}"
            (answer,) = asyncio.run(rooms.room(url, key, model, 1, 0.0, {**body, "messages": unique}))
            if rep and answer.stream is not None and answer.stream.first is not None:
                alone.append(answer.stream.first)
        with rooms.Memory(pid) as memory:
            began = time.perf_counter()
            answers = asyncio.run(rooms.room(url, key, model, students, spread, body))
            wall = time.perf_counter() - began
        result = rooms.figures(answers, wall)
        result.update(label=label, spread_s=spread, lesson=lesson, alone_first_s=median(alone))
        result["engine_rss_mb"] = memory.peak or None
        out[label] = result
        print(
            f"   {label}: first token p95 {seconds(result['first_token_s']['p95'])}, last done "
            f"{seconds(result['total_s']['max'])}, errors {len(result['errors'])}",
            flush=True,
        )
    return out


def run_room(bench: Bench, names: set[str]) -> None:
    from akash_nb._engine import class_server as share
    from akash_nb._engine import llama_server

    print("8. the room: 30 and 60 students running one cell, arriving spread out ...", flush=True)
    shared = share.start_share(port=llama_server.free_port(), host="127.0.0.1")
    try:
        room = bench_room(shared.url(), shared.key.reveal(), shared.model, shared.process.pid)
    finally:
        share.stop_share(shared)
    room["server"] = {
        "slots": shared.slots,
        "answer_tokens": share.SHARE_ANSWER_TOKENS,
        "slot_context": share.SHARE_SLOT_CONTEXT,
        "unified": share.SHARE_UNIFIED,
        "cache_ram_mib": share.SHARE_CACHE_RAM,
    }
    bench.results["room"] = room


# Every section in the order it runs: the names `--only` takes, and what runs them (sections that share a
# server run together).
SECTIONS: tuple[tuple[tuple[str, ...], Callable[[Bench, set[str]], None]], ...] = (
    (("import",), run_import),
    (("suite",), run_suite),
    (("cold",), run_cold),
    (("single", "ttft", "slider"), run_notebooks_server),
    (("users",), run_users),
    (("room",), run_room),
    (("engines",), run_engines),
)
NAMES = [name for names, _ in SECTIONS for name in names]


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        default=os.environ.get("BENCH_ONLY", ""),
        help=f"run these sections only: {', '.join(NAMES)} (default: all; also BENCH_ONLY)",
    )
    args = parser.parse_args(argv)
    args.only = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := args.only - set(NAMES):
        parser.error(f"no section {', '.join(sorted(unknown))}; the sections are {', '.join(NAMES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    from akash_nb._engine import class_server as share
    from akash_nb._engine import embedded as local
    from akash_nb._engine import llama_server
    from akash_nb._engine import weights as model

    args = options(argv)
    chosen = args.only or set(NAMES)
    began = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="akash-nb-bench-"))
    env = clean_environment(scratch / "state")
    found = engines.ensure()
    print(f"engine under test: {found.describe()}", flush=True)
    results: dict = {
        "machine": measure.machine(found.version),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "reps": REPS,
            "max_tokens": MAX_TOKENS,
            "users_max_tokens": USERS_MAX_TOKENS,
            "slider_tokens": SLIDER_TOKENS,
            "budget_s": BUDGET,
            "threads": llama_server.THREADS,
            "slots": local.SLOTS,
            "share_slots": share.SHARE_SLOTS,
            "context_per_slot": local.CONTEXT_TOKENS,
            "model": str(model.ensure()),
            "engine": found.describe(),
            "sections": sorted(chosen, key=NAMES.index),
        },
    }
    bench = Bench(env, scratch, found, results)
    try:
        for names, run in SECTIONS:
            if wanted := chosen & set(names):
                run(bench, wanted)
    finally:
        local.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)
        results["runtime_s"] = time.monotonic() - began
        table = rows(results)
        results["table"] = [
            dict(zip(("figure", "value", "floor", "ratio", "target", "met"), x, strict=False)) for x in table
        ]
        (OUT / "results.json").write_text(measure.dumps(results))
        print()
        print_table(table)
        built_s = (results.get("native_build") or {}).get("built_now_s")
        built = f"; the floors' native build took {built_s / 60:.1f} min of it" if built_s is not None else ""
        print(
            f"\nratio = median of per-repetition ratios (side / floor of the same round); "
            f"{results['runtime_s']:.0f} s in all{built}; {OUT / 'results.json'}"
        )
        for name in ("suite", "cold"):
            for failure in (results.get(name) or {}).get("failures", []) + (results.get(name) or {}).get(
                "errors", []
            ):
                print(f"{name}: {failure}")
        for n in USERS:
            for error in ((results.get("users") or {}).get(str(n)) or {}).get("errors", [])[:3]:
                print(f"{n} users: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
