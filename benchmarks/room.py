"""A room of students on the class server: each sends one lesson's guide call, streamed, arriving spread
uniformly over a few seconds, from one light client process (async httpx2, the SDK's own HTTP library, with
none of the SDK's parsing: `measure.via_http_async`, so the load generator takes little of the cores the
server needs).

    .venv/bin/python benchmarks/room.py --students 30 --spread 10                  # starts its own server
    .venv/bin/python benchmarks/room.py --students 30 --spread 10 --lesson 01      # lesson 01, as written
    .venv/bin/python benchmarks/room.py --students 60 --spread 20 --max-tokens 64
    .venv/bin/python benchmarks/room.py --url http://127.0.0.1:8080/v1 --key KEY   # a running one
    .venv/bin/python benchmarks/room.py --slots 48 --no-unified --cache-ram 0      # another setup

Student i sends at i × spread ÷ students seconds. Without --url it starts a class server through
`start_share` (akash_nb/_engine/class_server.py) on 127.0.0.1 and a free port (the share defaults unless
told otherwise), and
samples the engine process's resident memory while the room runs. It prints first token, total time and
per-student decode tokens/s (median / p95 / max), the finish reasons, the errors, and the engine's cached
prompt tokens; `--json PATH` writes every figure. All traffic stays on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2
from measure import Stream, median, percentile, rss_mb, via_http_async

from akash_nb._engine import class_server, llama_server

# The guide calls as the lessons write them: no max_tokens, no temperature (01, then 02's first cell).
LESSONS = {
    "01": [{"role": "user", "content": "Once upon a time, in a land far, far away"}],
    "02": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Who won the FIFA World Cup in 2022?"},
    ],
}


@dataclass
class Answer:
    """One student's streamed answer (`measure.Stream`, timed from sending), or what went wrong."""

    stream: Stream | None = None
    error: str | None = None


async def student(client: httpx2.AsyncClient, url: str, key: str, body: dict, delay: float) -> Answer:
    await asyncio.sleep(delay)
    try:
        stream = await via_http_async(client, url, key, body)
    except httpx2.HTTPError as error:
        return Answer(error=f"{type(error).__name__}: {error}"[:300])
    if stream.finish_reason is None:
        return Answer(stream, "the stream ended without a finish_reason")
    return Answer(stream)


async def room(url: str, key: str, model: str, students: int, spread: float, body: dict) -> list[Answer]:
    limits = httpx2.Limits(max_connections=students + 4, max_keepalive_connections=students + 4)
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(600.0), limits=limits) as client:
        return await asyncio.gather(
            *(
                student(client, url, key, {**body, "model": model}, i * spread / students)
                for i in range(students)
            )
        )


class Memory:
    """The engine process's resident memory, sampled every 0.2 s in a thread: its peak."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self.pid is not None and not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid) or 0.0)
            self._stop.wait(0.2)

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def figures(answers: list[Answer], wall: float) -> dict:
    def spread(values: list[float | None]) -> dict:
        present = [v for v in values if v is not None]
        return {"p50": median(present), "p95": percentile(present, 95), "max": max(present, default=None)}

    done = [a.stream for a in answers if a.error is None and a.stream is not None]
    return {
        "students": len(answers),
        "wall_s": wall,
        "first_token_s": spread([s.first for s in done]),
        "total_s": spread([s.total for s in done]),
        "student_tok_s": spread([s.decode_rate for s in done]),
        "completion_tokens": spread([s.completion_tokens for s in done]),
        "aggregate_tok_s": sum(s.completion_tokens or 0 for s in done) / wall,
        "cached_prompt_tokens": sum(s.cached_tokens or 0 for s in done),
        "finish_reasons": dict(Counter(s.finish_reason for s in done)),
        "errors": [a.error for a in answers if a.error is not None],
    }


def show(result: dict) -> None:
    def row(name: str, values: dict, unit: str) -> str:
        cells = [f"{values[k]:.2f}" if values[k] is not None else "-" for k in ("p50", "p95", "max")]
        return f"  {name:<22}{' / '.join(cells)} {unit}"

    setup = result["setup"]
    print(
        f"room: {result['students']} students over {setup['spread']:g} s, lesson {setup['lesson']}, "
        f"max_tokens {setup['max_tokens']}; server: {setup['server']}"
    )
    print("                        median / p95 / max")
    print(row("first token", result["first_token_s"], "s"))
    print(row("answer done", result["total_s"], "s"))
    print(row("per-student tok/s", result["student_tok_s"], "tok/s"))
    print(row("completion tokens", result["completion_tokens"], ""))
    print(f"  aggregate             {result['aggregate_tok_s']:.1f} tok/s over {result['wall_s']:.1f} s")
    print(f"  cached prompt tokens  {result['cached_prompt_tokens']}")
    print(f"  finish reasons        {result['finish_reasons']}")
    if result.get("engine_rss_mb"):
        print(f"  engine RSS            {result['engine_rss_mb']:.0f} MB peak")
    print(f"  errors                {len(result['errors'])}")
    for error in result["errors"][:5]:
        print(f"    {error}")


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--students", type=int, default=30)
    options.add_argument("--spread", type=float, default=10.0, help="seconds over which they arrive")
    options.add_argument("--lesson", choices=sorted(LESSONS), default="02", help="whose guide call")
    options.add_argument("--max-tokens", default="none", help="a number, or none (the guide calls send none)")
    options.add_argument("--temperature", type=float, help="default: none sent, as the guide calls")
    options.add_argument("--url", help="a running class server's API URL (on 127.0.0.1)")
    options.add_argument("--key", help="its key (with --url)")
    options.add_argument("--slots", type=int, default=class_server.SHARE_SLOTS)
    options.add_argument(
        "--unified", action=argparse.BooleanOptionalAction, default=class_server.SHARE_UNIFIED
    )
    options.add_argument("--cache-ram", type=int, default=class_server.SHARE_CACHE_RAM, help="MiB (0: none)")
    options.add_argument(
        "--answer-tokens", type=int, default=class_server.SHARE_ANSWER_TOKENS, help="the cap"
    )
    options.add_argument("--warm", action="store_true", help="send the call once before the room")
    options.add_argument("--json", type=Path, help="write every figure here")
    return options


def main() -> int:
    args = parser().parse_args()
    body: dict = {"messages": LESSONS[args.lesson]}  # streamed with usage (measure.via_http_async)
    if args.max_tokens != "none":
        body["max_tokens"] = int(args.max_tokens)
    if args.temperature is not None:
        body["temperature"] = args.temperature
    shared = None
    if args.url:
        if not args.key or not args.url.startswith(("http://127.0.0.1", "http://localhost")):
            raise SystemExit("--url must be a class server on 127.0.0.1, and --key its key.")
        url, key, model, pid, server = args.url.rstrip("/"), args.key, "any", None, args.url
    else:
        shared = class_server.start_share(
            port=llama_server.free_port(),
            host="127.0.0.1",
            slots=args.slots,
            unified=args.unified,
            cache_ram=args.cache_ram,
            answer_tokens=args.answer_tokens,
        )
        url, key, model, pid = shared.url(), shared.key.reveal(), shared.model, shared.process.pid
        kv = "unified" if args.unified else "split"
        server = f"{args.slots} slots, {kv} KV, cache-ram {args.cache_ram} MiB, cap {args.answer_tokens}"
    try:
        if args.warm:
            asyncio.run(room(url, key, model, 1, 0.0, body))
        idle = rss_mb(pid) if pid is not None else None
        with Memory(pid) as memory:
            began = time.perf_counter()
            answers = asyncio.run(room(url, key, model, args.students, args.spread, body))
            wall = time.perf_counter() - began
    finally:
        if shared is not None:
            class_server.stop_share(shared)
    result = figures(answers, wall)
    result["setup"] = {
        "spread": args.spread,
        "lesson": args.lesson,
        "max_tokens": args.max_tokens,
        "server": server,
        "slots": args.slots,
        "unified": args.unified,
        "cache_ram": args.cache_ram,
        "answer_tokens": args.answer_tokens,
    }
    result["engine_rss_mb"], result["engine_idle_rss_mb"] = memory.peak or None, idle
    result["answers"] = [
        {"error": a.error, **(a.stream.to_json() if a.stream is not None else {})} for a in answers
    ]
    show(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
