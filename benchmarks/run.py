"""`make bench`: how fast the lessons' moving parts are, each as a ratio to its floor, measured side by side.

    .venv/bin/python benchmarks/run.py            # prints one table, writes build/bench/results.json and
                                                  # build/bench/concurrency.png
    BENCH_REPS=3 .venv/bin/python benchmarks/run.py   # fewer repetitions (default 5)
    BENCH_ONLY=users,slider .venv/bin/python benchmarks/run.py   # some sections only

Every figure is a median over repetitions whose sides run interleaved (A, B, then B, A, ...) in this one
process, so the drift of a shared, noisy machine falls on every side alike. A ratio is the median of the
per-repetition ratios (each side divided by the floor measured in the same round).

The floors are llama.cpp's own tools from the same build as the embedded server, on the same model file
and threads (benchmarks/measure.py): `llama-bench` for one stream, `llama-batched-bench` for N at once.

1. one stream: decode tokens/s of a 128-token answer through the notebooks' embedded server (the openai
   SDK, as a lesson streams) / `llama-bench -n 128`.
2. first token of a short prompt (max_tokens=1) / `llama-batched-bench` with the same prompt length and one
   generated token (its T: prompt processing plus one token).
3. cold start: a fresh process and state folder, `akash_nb.client()` -> first streamed token (starting
   llama-server included) / a fresh `llama-batched-bench` process loading the model -> one token.
4. slider-to-answer: `panel.temperature.value = t; panel.run()` -> 100-token answer shown / the same request
   streamed with the bare SDK.
5. a room: 1, 4, 16 and 32 users at once (`openai.AsyncOpenAI`, one event loop, so the load generator takes
   little of the 2 cores) on the class server's configuration (`akash-nb serve --share` defaults, bound to
   127.0.0.1 here) / `llama-batched-bench` with the same prompt length, 64 generated tokens and the same
   parallelism (N, at most the server's slots): N·TG ÷ T, prompt processing included, like ours.
6. suite: the exact nbval replay run of every lesson / plain `jupyter nbconvert --execute`; and `python -c
   "import akash_nb"` / `python -c pass`.

All traffic stays on 127.0.0.1; every server started here is stopped before exit (try/finally).
"""

from __future__ import annotations

import asyncio
import json
import os
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
from measure import ROOT, Stream, median, percentile
from nbval_run import nbval_command

from akash_nb import notebooks

OUT = ROOT / "build" / "bench"
REPS = int(os.environ.get("BENCH_REPS", "5"))
ONLY = {name for name in os.environ.get("BENCH_ONLY", "").split(",") if name}
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
BUDGET = {"import": 20, "suite": 90, "cold": 40, "single": 60, "ttft": 30, "slider": 40, "users": 150}


def wanted(section: str) -> bool:
    return not ONLY or section in ONLY


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
class Engine:
    """The engine under test: llama-server's build, its sibling tools, the model file, the threads."""

    version: str
    bench: Path
    batched: Path
    model: Path
    threads: int


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
from akash_nb import local
from akash_nb.providers import LOCAL_MODEL_NAME
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
    from akash_nb import local

    previous = os.environ.get("AKASH_NB_STATE_DIR")
    os.environ["AKASH_NB_STATE_DIR"] = str(state)
    try:
        local.stop_all()
    finally:
        if previous is not None:
            os.environ["AKASH_NB_STATE_DIR"] = previous


def bench_cold(env: dict[str, str], scratch: Path, engine: Engine) -> dict:
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
                str(engine.batched),
                "-m",
                str(engine.model),
                "-c",
                "4096",
                "-npp",
                "8",
                "-ntg",
                "1",
                "-npl",
                "1",
                "-t",
                str(engine.threads),
                "-tb",
                str(engine.threads),
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


def bench_single(client, model: str, engine: Engine) -> dict:
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
                engine.bench, engine.model, generate=MAX_TOKENS, threads=engine.threads
            ),
            "spinning": lambda _i: measure.llama_bench_tg(
                engine.bench, engine.model, generate=MAX_TOKENS, threads=engine.threads, spin=True
            ),
        },
    )
    rates = [r.decode_rate for r in runs["server"]]
    return {
        "server_tok_s": median(rates),
        "floor_tok_s": median(runs["floor"]),
        "ratio": paired_ratio(rates, runs["floor"]),
        "spinning_tok_s": median(runs["spinning"]),
        "passive_over_spinning": paired_ratio(runs["floor"], runs["spinning"]),
        "tokens": sorted({r.completion_tokens for r in runs["server"]}),
        "runs": [r.to_json() for r in runs["server"]],
        "floor_runs": runs["floor"],
    }


def bench_ttft(client, model: str, engine: Engine) -> dict:
    section = Section("ttft")
    probe = measure.via_server(client, model, messages(SHORT, "probe"), max_tokens=1, temperature=0)
    prompt = probe.prompt_tokens or 30

    def floor(_i: int) -> float:
        rows = measure.batched_bench(
            engine.batched,
            engine.model,
            prompt=prompt,
            generate=1,
            parallel=[1],
            context=4096,
            threads=engine.threads,
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


def bench_users(url: str, key: str, model: str, slots: int, engine: Engine) -> dict:
    section = Section("users")
    prompt = asyncio.run(_room(url, key, model, 1, -1))["prompt_tokens"] or 40  # also warms the server
    result: dict = {"prompt_tokens": prompt, "slots": slots}
    for users in USERS:
        parallel = min(users, slots)
        rounds: list[dict] = []
        floors: list[float] = []

        def server_side(rep: int, users: int = users, rounds: list = rounds) -> None:
            rounds.append(asyncio.run(_room(url, key, model, users, rep)))

        spinning: list[float] = []

        def floor_side(
            _rep: int,
            parallel: int = parallel,
            floors: list = floors,
            spinning: list = spinning,
            users: int = users,
        ) -> None:
            def aggregate(spin: bool) -> float:
                found = measure.batched_bench(
                    engine.batched,
                    engine.model,
                    prompt=prompt,
                    generate=USERS_MAX_TOKENS,
                    parallel=[parallel],
                    context=slots * 4096,
                    threads=engine.threads,
                    spin=spin,
                )
                return found[parallel]["aggregate_tok_s"]

            floors.append(aggregate(spin=False))
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
            "floor_tok_s": median(floors),
            "floor_parallel": parallel,
            "ratio": paired_ratio(rates, floors),
            "ttft_p50_s": percentile(ttft, 50),
            "ttft_p95_s": percentile(ttft, 95),
            "errors": [e for r in rounds for e in r["errors"]],
            "raw": rounds,
            "floor_raw": floors,
            "spinning_floor_tok_s": median(spinning),
        }
    return result


def plot_users(users: dict, path: Path) -> None:
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
        f"llama-server, {users['slots']} slots, {USERS_MAX_TOKENS}-token answers, 2 cores", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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

    if s := r.get("single"):
        row(
            "one stream, decode tok/s (llama-bench tg)",
            f"{s['server_tok_s']:.0f} tok/s",
            f"{s['floor_tok_s']:.0f} tok/s",
            s["ratio"],
            "≥ 0.95",
            (s["ratio"] or 0) >= 0.95,
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
            p95_target = "p95 ≤ 1.5 s" if n == 16 else "report"
            row(
                f"{n} users at once, first token p50 / p95",
                f"{seconds(x['ttft_p50_s'])} / {seconds(x['ttft_p95_s'])}",
                "—",
                None,
                p95_target,
                (x["ttft_p95_s"] or 9) <= 1.5 if n == 16 else None,
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


def clean_environment(state: Path) -> dict[str, str]:
    """This process's environment without any provider setting, with a private state folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKASH") and not k.endswith("API_KEY")}
    env["AKASH_NB_STATE_DIR"] = str(state)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    os.environ.clear()
    os.environ.update(env)
    return env


def main() -> int:
    import openai

    from akash_nb import engine as engines
    from akash_nb import llama_server, local, model, share

    began = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="akash-nb-bench-"))
    env = clean_environment(scratch / "state")
    found = engines.ensure()
    tools = {name: found.tool(name) for name in ("llama-bench", "llama-batched-bench")}
    if None in tools.values():
        print(
            f"llama.cpp's bench tools are not beside {found.server}; `akash-nb engine --build` builds them."
        )
        return 1
    engine = Engine(
        found.version,
        tools["llama-bench"],
        tools["llama-batched-bench"],
        model.ensure(),
        llama_server.THREADS,
    )
    settings = {
        "reps": REPS,
        "max_tokens": MAX_TOKENS,
        "users_max_tokens": USERS_MAX_TOKENS,
        "slider_tokens": SLIDER_TOKENS,
        "budget_s": BUDGET,
        "threads": llama_server.THREADS,
    }
    results: dict = {
        "machine": measure.machine(found.version),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            **settings,
            "slots": local.SLOTS,
            "share_slots": share.SHARE_SLOTS,
            "context_per_slot": local.CONTEXT_TOKENS,
            "model": str(engine.model),
            "engine": str(found.server),
        },
    }
    shared = None
    try:
        if wanted("import"):
            print("6. import akash_nb and the suite (replay) ...", flush=True)
            results["import"] = bench_import(env)
        if wanted("suite"):
            results["suite"] = bench_suite(env, scratch)
        if wanted("cold"):
            print("3. cold start ...", flush=True)
            results["cold"] = bench_cold(env, scratch, engine)

        if {"single", "ttft", "slider"} & (ONLY or {"single"}):
            server = local.ensure_server()
            client = openai.OpenAI(
                base_url=server.base_url, api_key=server.key.reveal(), max_retries=0, timeout=300.0
            )
            measure.via_server(client, server.model, messages("Hi", "warm"), max_tokens=4)  # untimed warm-up
            if wanted("single"):
                print("1. one stream ...", flush=True)
                results["single"] = bench_single(client, server.model, engine)
            if wanted("ttft"):
                print("2. first token ...", flush=True)
                results["ttft"] = bench_ttft(client, server.model, engine)
            if wanted("slider"):
                print("4. slider-to-answer ...", flush=True)
                results["slider"] = bench_slider(client, server.model)
            local.stop()  # the room's server gets the cores to itself

        if wanted("users"):
            print("5. a room: 1, 4, 16, 32 users at once ...", flush=True)
            shared = share.start_share(port=llama_server.free_port(), host="127.0.0.1")
            results["users"] = bench_users(
                shared.url(), shared.key.reveal(), shared.model, shared.slots, engine
            )
            results["users"]["server_rss_mb"] = measure.rss_mb(shared.process.pid)
            plot_users(results["users"], OUT / "concurrency.png")
    finally:
        if shared is not None:
            share.stop_share(shared)
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
        print(
            f"\nratio = median of per-repetition ratios (side / floor of the same round); "
            f"{results['runtime_s']:.0f} s in all; {OUT / 'results.json'}, {OUT / 'concurrency.png'}"
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
