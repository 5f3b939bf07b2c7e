"""`make bench`: how fast the lessons' moving parts are, each as a ratio to its floor, measured side by side.

    .venv/bin/python benchmarks/run.py            # prints one table, writes build/bench/results.json and
                                                  # build/bench/concurrency.png
    BENCH_REPS=3 .venv/bin/python benchmarks/run.py   # fewer repetitions (default 7)

Every figure is a median over repetitions whose sides run interleaved (A, B, C, then B, C, A, ...) in this
one process, so the drift of a shared, noisy machine falls on every side alike. A ratio is the median of
the per-repetition ratios (each side divided by the floor measured in the same round).

1. serving overhead: streamed tokens/s through the embedded server / `Llama.create_chat_completion(stream=
   True)` in-process with the same model file, n_ctx and threads. The floor is the chat call, not the raw
   `generate` loop, because the server runs exactly that call (chat template, detokenizing, stop strings):
   the ratio is then what serving adds (HTTP, SSE, JSON, threads, the SDK reading it), nothing else.
   Also measured: the server with each change proposed in benchmarks/tuned_server.py.
2. time to first token (max_tokens=1) through the server / in-process, short and ~2k-token prompts, for
   the stock server and the proposed one; and each server's resident memory after the long prompts.
3. cold start: a fresh process, fresh AKASH_NB_STATE_DIR: akash_nb.client() -> first streamed token / a
   fresh process loading llama_cpp.Llama -> first token.
4. slider-to-answer: panel.temperature.value = t; panel.run() (the Run button) -> 100-token answer shown /
   the same request in-process.
5. many users: 1, 4, 16 concurrent clients streaming from one embedded server.
6. suite: the exact nbval replay run of every lesson / plain `jupyter nbconvert --execute` of the same
   lessons; and `python -c "import akash_nb"` / `python -c pass`.

All traffic stays on 127.0.0.1; every server started here is stopped before exit (try/finally).
Where the server's time goes: benchmarks/profile_server.py (needs py-spy, which is not a dependency).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
from measure import ROOT, Stream, median, percentile  # noqa: E402

OUT = ROOT / "build" / "bench"
REPS = int(os.environ.get("BENCH_REPS", "7"))
MIN_REPS = max(1, min(3, REPS))
MAX_TOKENS = 128
USERS = (1, 4, 16)
USERS_MAX_TOKENS = 64
SLIDER_TOKENS = 100
TEMPERATURES = (0.2, 0.5, 0.8, 1.1, 0.3, 0.6, 0.9, 1.2)  # the slider moves before every run
LONG_PROMPT_TOKENS = 2000  # with the chat template around it
STORY = "Write a long story about a lighthouse keeper and a storm."
LESSONS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("0*.ipynb"))
NBVAL = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", "tests/sanitize.cfg", *LESSONS]
# Servers measured beside the embedded one ("stock": akash_nb.local as shipped), from tuned_server.py:
# "upstream" is the same server without its two speed changes, the "before" of the serving figure.
VARIANTS: tuple[str, ...] = ("upstream",)
PROPOSED = "stock"
SIDES = tuple(dict.fromkeys(("stock", PROPOSED)))  # the servers every figure compares, each once


def shown(name: str) -> str:
    """How a side is named in the table: "stock" is the embedded server as akash_nb ships it."""
    return "embedded server" if name == "stock" else name

# Seconds each section may spend: after MIN_REPS it stops before a repetition that would overrun, so
# `make bench` ends within 10 minutes on a busy machine (a quiet one needs about half of this). The long
# prompt is the costly part: ~2k tokens take ~10-15 s to read on the one thread the server gets on 2 cores.
BUDGET = {"import": 20, "suite": 90, "cold": 45, "overhead": 90, "ttft": 150, "slider": 35, "users": 90}


def messages(text: str, nonce: int | str) -> list[dict]:
    # A different first line every request, so neither side reuses the previous request's KV cache.
    return [{"role": "user", "content": f"Request {nonce}.\n{text}"}]


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


def interleaved(section: Section, sides: dict[str, Callable[[int], object]], wanted: int = REPS
                ) -> dict[str, list]:
    """Run every side once a repetition, rotating the order each repetition."""
    names = list(sides)
    runs: dict[str, list] = {name: [] for name in names}
    for i in section.reps(wanted):
        for name in names[i % len(names):] + names[:i % len(names)]:
            runs[name].append(sides[name](i))
    return runs


def paired_ratio(values: list, floors: list) -> float | None:
    return median(v / f if v and f else None for v, f in zip(values, floors, strict=False))


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


# --- 6. suite and import --------------------------------------------------------------------------------

def timed_command(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return time.perf_counter() - started, done.returncode, tail


def bench_import(env: dict[str, str]) -> dict:
    section = Section("import")
    runs = interleaved(section, {
        "bare": lambda _i: timed_command([sys.executable, "-c", "pass"], env)[0],
        "import": lambda _i: timed_command([sys.executable, "-c", "import akash_nb"], env)[0],
    }, wanted=max(REPS, 10))
    extra = median(a - b for a, b in zip(runs["import"], runs["bare"], strict=False))
    return {"bare_s": runs["bare"], "import_s": runs["import"], "median_bare_s": median(runs["bare"]),
            "median_import_s": median(runs["import"]), "median_extra_s": extra}


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
        command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                   "--output-dir", str(out), *LESSONS]
        took, code, tail = timed_command(command, replay)
        if code:
            failures.append(f"nbconvert exited {code}: {tail}")
        return took

    runs = interleaved(section, {"nbval": nbval, "nbconvert": nbconvert}, wanted=3)
    return {"nbval_s": runs["nbval"], "nbconvert_s": runs["nbconvert"],
            "median_nbval_s": median(runs["nbval"]), "median_nbconvert_s": median(runs["nbconvert"]),
            "ratio": paired_ratio(runs["nbval"], runs["nbconvert"]), "failures": failures,
            "lessons": LESSONS}


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

COLD_FLOOR = """
import json, sys, time
started = time.monotonic()
import llama_cpp
imported = time.monotonic()
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=int(sys.argv[3]),
                      n_threads_batch=int(sys.argv[3]), verbose=False)
loaded = time.monotonic()
first = None
for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": "Hello!"}], max_tokens=1,
                                        stream=True):
    if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
        first = time.monotonic()
print(json.dumps({"started": started, "imported": imported, "loaded": loaded, "first": first}))
"""


def _stop_leftover(state: Path) -> None:
    """A child that died before its own local.stop(): end the server its state file names."""
    from akash_nb import local

    previous = os.environ.get("AKASH_NB_STATE_DIR")
    os.environ["AKASH_NB_STATE_DIR"] = str(state)
    try:
        local.stop()
    finally:
        if previous is not None:
            os.environ["AKASH_NB_STATE_DIR"] = previous


def bench_cold(env: dict[str, str], scratch: Path) -> dict:
    import json

    from akash_nb import local

    section = Section("cold")
    errors: list[str] = []

    def client_side(i: int) -> dict | None:
        state = scratch / f"cold-state-{i}"
        child_env = {**env, "AKASH_NB_STATE_DIR": str(state), "AKASH_NB_PROVIDER": "local"}
        launched = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-c", COLD_CLIENT], cwd=scratch, env=child_env,
                                  capture_output=True, text=True, timeout=150)
        finally:
            _stop_leftover(state)
        if done.returncode:
            errors.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output")
            return None
        t = json.loads(done.stdout.strip().splitlines()[-1])
        return {"launch_to_first_s": t["first"] - launched, "client_to_first_s": t["first"] - t["imported"],
                "client_s": t["client"] - t["imported"], "first_request_s": t["first"] - t["client"],
                "interpreter_and_import_s": t["imported"] - launched}

    def floor_side(_i: int) -> dict | None:
        launched = time.monotonic()
        done = subprocess.run([sys.executable, "-c", COLD_FLOOR, str(local.model_file()),
                               str(local.CONTEXT_TOKENS), str(local.THREADS)],
                              cwd=scratch, env=env, capture_output=True, text=True, timeout=150)
        if done.returncode:
            errors.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output")
            return None
        t = json.loads(done.stdout.strip().splitlines()[-1])
        return {"launch_to_first_s": t["first"] - launched,
                "import_llama_cpp_s": t["imported"] - t["started"], "load_s": t["loaded"] - t["imported"],
                "first_token_s": t["first"] - t["loaded"]}

    runs = interleaved(section, {"client": client_side, "floor": floor_side}, wanted=5)
    value = [r["client_to_first_s"] if r else None for r in runs["client"]]
    floor = [r["launch_to_first_s"] if r else None for r in runs["floor"]]
    return {"client": runs["client"], "floor": runs["floor"], "errors": errors,
            "median_client_to_first_s": median(value), "median_floor_s": median(floor),
            "ratio": paired_ratio(value, floor),
            "median_parts": {k: median(r[k] for r in runs["client"] if r)
                             for k in ("client_s", "first_request_s", "interpreter_and_import_s")},
            "median_floor_parts": {k: median(r[k] for r in runs["floor"] if r)
                                   for k in ("import_llama_cpp_s", "load_s", "first_token_s")}}


# --- 1, 2, 4, 5: a running server -------------------------------------------------------------------------

@dataclass
class Target:
    """One server to measure: a client for it and the name to ask for."""

    name: str
    client: object
    model: str


def stream_stats(runs: list[Stream]) -> dict:
    return {"decode_tok_s": median(r.decode_rate for r in runs), "ttft_s": median(r.first for r in runs),
            "end_to_end_tok_s": median(r.end_to_end_rate for r in runs),
            "tokens": sorted({r.tokens for r in runs}),
            "median_gap_ms": median(median(r.gaps) for r in runs if r.gaps) * 1000 if runs else None,
            "p95_gap_ms": median(percentile(r.gaps, 95) for r in runs if r.gaps) * 1000 if runs else None,
            "runs": [r.to_json() for r in runs]}


def bench_overhead(targets: list[Target], llm) -> dict:
    section = Section("overhead")
    sides: dict[str, Callable[[int], Stream]] = {
        t.name: (lambda i, t=t: measure.via_server(t.client, t.model, messages(STORY, f"o{i}"),
                                                   max_tokens=MAX_TOKENS, temperature=0))
        for t in targets}
    sides["in-process"] = lambda i: measure.in_process(llm, messages(STORY, f"o{i}"), max_tokens=MAX_TOKENS,
                                                       temperature=0)
    runs = interleaved(section, sides)
    floor = [r.decode_rate for r in runs["in-process"]]
    result = {name: stream_stats(rs) for name, rs in runs.items()}
    for t in targets:
        result[t.name]["ratio"] = paired_ratio([r.decode_rate for r in runs[t.name]], floor)
    return result


def long_prompt(llm) -> str:
    """About LONG_PROMPT_TOKENS tokens of numbered facts, then a question about them."""
    colours = ("red", "white", "green", "blue", "yellow", "black", "grey")
    facts, n = [], 0
    while True:
        n += 1
        facts.append(f"Fact {n}: the lighthouse at harbour {n} was painted {colours[n % 7]} in {1850 + n}, "
                     f"and its keeper logged {n * 3} storms.")
        if n % 5 == 0 and len(llm.tokenize("\n".join(facts).encode())) >= LONG_PROMPT_TOKENS - 60:
            break
    return "\n".join(facts) + "\nWhich harbour's lighthouse was painted in the earliest year?"


def prompt_tokens(llm, sent: list[dict]) -> int:
    """The tokens the model reads for `sent`, chat template included: the message's own tokens plus what
    the template adds, measured once on a one-word message (reading the long prompt again would cost ~15 s).
    """
    def own(m: list[dict]) -> int:
        return len(llm.tokenize(m[0]["content"].encode(), add_bos=False))

    probe = [{"role": "user", "content": "Hi"}]
    template = llm.create_chat_completion(messages=probe, max_tokens=1)["usage"]["prompt_tokens"] - own(probe)
    return own(sent) + template


def bench_ttft(targets: list[Target], llm) -> dict:
    section = Section("ttft")
    prompts = {"short": "Hello! Who are you?", "long": long_prompt(llm)}
    result: dict = {"prompt_tokens": {}}
    for kind, text in prompts.items():
        def ask(i: int, kind: str = kind, text: str = text) -> list[dict]:
            return messages(text, f"{kind}{i}")

        sides: dict[str, Callable[[int], Stream]] = {
            t.name: (lambda i, t=t, ask=ask: measure.via_server(t.client, t.model, ask(i), max_tokens=1,
                                                                temperature=0))
            for t in targets}
        sides["in-process"] = lambda i, ask=ask: measure.in_process(llm, ask(i), max_tokens=1, temperature=0)
        runs = interleaved(section, sides, wanted=REPS if kind == "short" else 3)
        result["prompt_tokens"][kind] = prompt_tokens(llm, ask(0))
        floor = [r.first for r in runs["in-process"]]
        result[kind] = {name: {"ttft_s": median(r.first for r in rs), "runs": [r.first for r in rs]}
                        for name, rs in runs.items()}
        for t in targets:
            result[kind][t.name]["ratio"] = paired_ratio([r.first for r in runs[t.name]], floor)
    return result


def bench_slider(llm) -> dict:
    import akash_nb

    section = Section("slider")
    client = akash_nb.client("local", show=False)
    panel = akash_nb.panel(client, STORY, max_tokens=SLIDER_TOKENS)

    def run_panel(i: int) -> dict:
        panel.prompt.value = f"Request s{i}.\n{STORY}"
        panel.temperature.value = TEMPERATURES[i % len(TEMPERATURES)]
        started = time.perf_counter()
        result = panel.run()
        took = time.perf_counter() - started
        # llama-cpp-python reports no usage in a stream: count the answer's tokens with the same tokenizer.
        tokens = (result.usage.completion_tokens if result.usage
                  else len(llm.tokenize(result.text.encode(), add_bos=False)))
        return {"s": took, "tokens": tokens, "finish_reason": result.finish_reason,
                "first_token_s": result.first_token_seconds, "error": result.error,
                "shown": panel.answer.value == result.answer_html()}

    def run_floor(i: int) -> dict:
        r = measure.in_process(llm, messages(STORY, f"s{i}"), max_tokens=SLIDER_TOKENS,
                               temperature=TEMPERATURES[i % len(TEMPERATURES)])
        return {"s": r.total, "tokens": r.tokens, "finish_reason": r.finish_reason, "first_token_s": r.first,
                "error": None}

    run_panel(-1)  # the first run of a panel pays for imports (mistune's renderer): not what a slider costs
    runs = interleaved(section, {"panel": run_panel, "in-process": run_floor})
    return {"panel": runs["panel"], "in-process": runs["in-process"],
            "median_s": median(r["s"] for r in runs["panel"]),
            "median_floor_s": median(r["s"] for r in runs["in-process"]),
            "ratio": paired_ratio([r["s"] for r in runs["panel"]], [r["s"] for r in runs["in-process"]]),
            "per_100_tokens_s": median(r["s"] * SLIDER_TOKENS / r["tokens"] for r in runs["panel"]
                                       if r["tokens"]),
            "tokens": [r["tokens"] for r in runs["panel"]],
            "finish_reasons": [r["finish_reason"] for r in runs["panel"]],
            "errors": [r["error"] for r in runs["panel"] if r["error"]]}


def users_round(target: Target, clients: list, users: int, rep: int) -> dict:
    barrier = threading.Barrier(users)
    starts: list[float] = [0.0] * users
    results: list[Stream | None] = [None] * users
    errors: list[str] = []

    def one(j: int) -> None:
        barrier.wait()
        starts[j] = time.perf_counter()
        try:
            results[j] = measure.via_server(clients[j], target.model, messages(STORY, f"u{users}-{rep}-{j}"),
                                            max_tokens=USERS_MAX_TOKENS, temperature=0)
            if results[j].finish_reason is None:
                errors.append(f"client {j}: the stream ended without a finish_reason")
        except Exception as exc:  # noqa: BLE001 — every failure is counted and reported
            errors.append(f"client {j}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(j,)) for j in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [(s, r) for s, r in zip(starts, results, strict=False) if r is not None]
    wall = max(s + r.total for s, r in done) - min(starts) if done else None
    tokens = sum(r.tokens for _, r in done)
    return {"users": users, "wall_s": wall, "tokens": tokens,
            "aggregate_tok_s": tokens / wall if wall else None,
            "ttft_s": [r.first for _, r in done], "total_s": [r.total for _, r in done], "errors": errors}


def bench_users(targets: list[Target], server_key: dict[str, tuple[str, str]]) -> dict:
    import openai

    section = Section("users")
    result: dict = {}
    for target in targets:
        url, key = server_key[target.name]
        clients = [openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=300.0)
                   for _ in range(max(USERS))]
        rounds: dict[int, list[dict]] = {n: [] for n in USERS}
        # Few repetitions of the big rounds: one 16-user round is 16 answers long.
        wanted = {1: REPS, 4: 3, 16: 2 if target.name == "stock" else 1}
        for rep in range(max(wanted.values())):
            for users in USERS:
                if rep < wanted[users] and (rep < 1 or time.monotonic() - section.started < BUDGET["users"]):
                    rounds[users].append(users_round(target, clients, users, rep))
        result[target.name] = {
            str(n): {"rounds": len(rs),
                     "aggregate_tok_s": median(r["aggregate_tok_s"] for r in rs),
                     "ttft_p50_s": percentile([t for r in rs for t in r["ttft_s"]], 50),
                     "ttft_p95_s": percentile([t for r in rs for t in r["ttft_s"]], 95),
                     "total_p95_s": percentile([t for r in rs for t in r["total_s"]], 95),
                     "errors": [e for r in rs for e in r["errors"]], "raw": rs}
            for n, rs in rounds.items() if rs}
    return result


def plot_users(users: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, rate_axis = plt.subplots(figsize=(5, 3.2), dpi=100)
    latency_axis = rate_axis.twinx()
    for name, style in zip(SIDES, ("-", "--"), strict=False):
        rounds = users.get(name)
        if not rounds:
            continue
        ns = sorted(int(n) for n in rounds)
        rate_axis.plot(ns, [rounds[str(n)]["aggregate_tok_s"] for n in ns], "o" + style, color="tab:blue",
                       label=f"{shown(name)}: tokens/s")
        latency_axis.plot(ns, [rounds[str(n)]["ttft_p95_s"] for n in ns], "s" + style, color="tab:red",
                          label=f"{shown(name)}: p95 first token")
    rate_axis.set_xscale("log", base=2)
    rate_axis.set_xticks(list(USERS), [str(n) for n in USERS])
    rate_axis.set_xlabel("concurrent clients")
    rate_axis.set_ylabel("aggregate tokens/s", color="tab:blue")
    latency_axis.set_ylabel("p95 time to first token (s)", color="tab:red")
    rate_axis.set_ylim(bottom=0)
    latency_axis.set_ylim(bottom=0)
    handles = rate_axis.get_legend_handles_labels()[0] + latency_axis.get_legend_handles_labels()[0]
    rate_axis.legend(handles=handles, fontsize=7, loc="center left")
    rate_axis.set_title(f"One embedded server, max_tokens={USERS_MAX_TOKENS}", fontsize=9)
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

    o = r.get("overhead")
    if o:
        floor = o["in-process"]["decode_tok_s"]
        for name in ("stock", *VARIANTS):
            if name in o:
                ratio = o[name]["ratio"]
                value, floor_text = f"{o[name]['decode_tok_s']:.1f} tok/s", f"{floor:.1f} tok/s"
                if name in SIDES:  # the server the lessons use (or a proposed one): held to the target
                    row(f"1 serving tok/s, {shown(name)}", value, floor_text, ratio, "≥ 0.95",
                        ratio is not None and ratio >= 0.95)
                else:  # a reference measured beside it, e.g. upstream: the "before"
                    row(f"1 serving tok/s, {name} (reference)", value, floor_text, ratio, "—", None)
    t = r.get("ttft")
    if t:
        for kind in ("short", "long"):
            floor = t[kind]["in-process"]["ttft_s"]
            for name in SIDES:
                if name in t[kind]:
                    row(f"2 first token, {kind} ({t['prompt_tokens'][kind]} tok), {shown(name)}",
                        seconds(t[kind][name]["ttft_s"]), seconds(floor), t[kind][name]["ratio"], "report",
                        None)
    if t and "rss_mb_after_long_prompts" in t:
        rss = t["rss_mb_after_long_prompts"]
        row("2 server memory (RSS) after the long prompts, " + " / ".join(map(shown, SIDES)),
            " / ".join(f"{rss[name]:.0f} MB" for name in SIDES), "—",
            rss["stock"] / rss[PROPOSED] if PROPOSED != "stock" and rss[PROPOSED] else None, "report", None)
    c = r.get("cold")
    if c:
        v = c["median_client_to_first_s"]
        row("3 cold start: client() → first token", seconds(v), seconds(c["median_floor_s"]), c["ratio"],
            "≤ 3 s", v is not None and v <= 3.0 and not c["errors"])
    s = r.get("slider")
    if s:
        v = s["median_s"]
        row(f"4 slider → {SLIDER_TOKENS}-token answer shown", seconds(v), seconds(s["median_floor_s"]),
            s["ratio"], "≤ 1.5 s", v is not None and v <= 1.5 and not s["errors"])
    u = r.get("users")
    if u:
        for name, rounds in u.items():
            one = rounds.get("1", {}).get("aggregate_tok_s")
            one_ttft = rounds.get("1", {}).get("ttft_p50_s")
            for n in sorted(rounds, key=int):
                x = rounds[n]
                ratio = x["aggregate_tok_s"] / one if one and x["aggregate_tok_s"] else None
                row(f"5 {shown(name)}: {n} users, aggregate tok/s", f"{x['aggregate_tok_s']:.1f} tok/s",
                    f"{one:.1f} tok/s" if one else "—", ratio, "report", None)
                p95 = x["ttft_p95_s"]
                row(f"5 {shown(name)}: {n} users, first token p50/p95",
                    f"{seconds(x['ttft_p50_s'])} / {seconds(p95)}", seconds(one_ttft),
                    p95 / one_ttft if p95 and one_ttft else None, "report", None)
            errors = sum(len(x["errors"]) for x in rounds.values())
            row(f"5 {shown(name)}: errors, all rounds", str(errors), "0", None, "0", errors == 0)
    suite = r.get("suite")
    if suite:
        ratio = suite["ratio"]
        row("6 nbval replay suite / nbconvert --execute", seconds(suite["median_nbval_s"]),
            seconds(suite["median_nbconvert_s"]), ratio, "≤ 1.5", ratio is not None and ratio <= 1.5
            and not suite["failures"])
        v = suite["median_nbval_s"]
        row("6 nbval replay suite, total", seconds(v), "—", None, "≤ 60 s", v is not None and v <= 60)
    i = r.get("import")
    if i:
        extra = i["median_extra_s"]
        row("6 import akash_nb, extra over python -c pass", f"{extra * 1000:.0f} ms",
            f"{i['median_bare_s'] * 1000:.0f} ms", i["median_import_s"] / i["median_bare_s"], "≤ 150 ms",
            extra <= 0.150)
    return out


def print_table(table: list[tuple[str, ...]]) -> None:
    header = ("figure", "value", "floor", "ratio", "target", "met?")
    widths = [max(len(x[k]) for x in (header, *table)) for k in range(len(header))]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))
    print(line)
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
    began = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="akash-nb-bench-"))
    env = clean_environment(scratch / "state")
    results: dict = {"machine": measure.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "settings": {"reps": REPS, "min_reps": MIN_REPS, "max_tokens": MAX_TOKENS,
                                  "users_max_tokens": USERS_MAX_TOKENS, "slider_tokens": SLIDER_TOKENS,
                                  "budget_s": BUDGET}}
    started: list[measure.Started] = []
    from akash_nb import local

    results["settings"].update({"threads": local.THREADS, "n_ctx": local.CONTEXT_TOKENS,
                                "model": str(local.model_file())})
    try:
        print("6. import akash_nb and the suite (replay) ...", flush=True)
        results["import"] = bench_import(env)
        results["suite"] = bench_suite(env, scratch)
        print("3. cold start ...", flush=True)
        results["cold"] = bench_cold(env, scratch)

        import llama_cpp
        import openai

        print("starting the servers ...", flush=True)
        server = local.ensure_server()
        targets = [Target("stock", openai.OpenAI(base_url=server.base_url, api_key=server.key.reveal(),
                                                 max_retries=0, timeout=300.0), server.model)]
        keys = {"stock": (server.base_url, server.key.reveal())}
        for variant in VARIANTS:
            s = measure.start_variant(variant, scratch / f"{variant}.log")
            started.append(s)
            targets.append(Target(variant, openai.OpenAI(base_url=s.base_url, api_key=s.key, max_retries=0,
                                                         timeout=300.0), s.model))
            keys[variant] = (s.base_url, s.key)
        llm = llama_cpp.Llama(model_path=str(local.model_file()), n_ctx=local.CONTEXT_TOKENS,
                              n_threads=local.THREADS, n_threads_batch=local.THREADS, verbose=False)
        for t in targets:  # warm up every side once, untimed
            measure.via_server(t.client, t.model, messages("Hi", "warm"), max_tokens=4, temperature=0)
        measure.in_process(llm, messages("Hi", "warm"), max_tokens=4, temperature=0)

        print("1. serving overhead ...", flush=True)
        results["overhead"] = bench_overhead(targets, llm)
        print("2. time to first token ...", flush=True)
        by_name = {t.name: t for t in targets}
        results["ttft"] = bench_ttft([by_name[name] for name in SIDES], llm)
        # The stock server keeps every prompt token's logits (logits_all): its memory grows with the prompt.
        pids = {"stock": server.pid, **{s.variant: s.process.pid for s in started}}
        results["ttft"]["rss_mb_after_long_prompts"] = {name: measure.rss_mb(pids[name]) for name in SIDES}
        print("4. slider-to-answer ...", flush=True)
        results["slider"] = bench_slider(llm)
        print("5. many users ...", flush=True)
        results["users"] = bench_users([by_name[name] for name in SIDES], keys)
        plot_users(results["users"], OUT / "concurrency.png")
    finally:
        for s in started:
            s.stop()
        local.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        results["runtime_s"] = time.monotonic() - began
        table = rows(results)
        results["table"] = [dict(zip(("figure", "value", "floor", "ratio", "target", "met"), x, strict=False))
                            for x in table]
        (OUT / "results.json").write_text(measure.dumps(results))
        print()
        print_table(table)
        print(f"\nratio = median of per-repetition ratios (side / floor of the same round); "
              f"{results['runtime_s']:.0f} s in all; {OUT / 'results.json'}, {OUT / 'concurrency.png'}")
        overhead = results.get("overhead")
        if overhead:
            gaps = ", ".join(f"{name} {x['median_gap_ms']:.2f} ms" for name, x in overhead.items())
            print(f"median time between streamed tokens (128-token answers): {gaps}")
        for name in ("suite", "cold"):
            for failure in (results.get(name) or {}).get("failures", []) + (results.get(name) or {}).get(
                    "errors", []):
                print(f"{name}: {failure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
