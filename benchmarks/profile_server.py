"""Where the embedded server's time goes while it streams: a py-spy profile of one server, summarised.

    pip install py-spy        # not a dependency of the project; any py-spy on PATH (or --py-spy PATH)
    .venv/bin/python benchmarks/profile_server.py --variant stock
    .venv/bin/python benchmarks/profile_server.py --variant both

Samples every thread of the server (idle ones too) while it streams a few 128-token answers, then prints,
per thread, the share of samples in llama.cpp's decode, waiting (a condition, a selector), and running
Python; and the Python frames that cost most. What it shows on 2 cores: the Python work is a few percent;
the stock path's cost is *waiting* — each token is a separate thread-pool job (the decode samples are
spread over several worker threads), started only after the previous chunk was sent.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402

WAITING = ("Condition.wait", "EpollSelector.select", "Event.wait", "_worker (concurrent/futures/thread.py")


def summarise(raw: Path) -> None:
    threads: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    python: collections.Counter = collections.Counter()
    decoders = set()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread, leaf, n = frames[0], frames[-1], int(count)
        threads[thread] += n
        if "LlamaContext.decode" in leaf:
            kinds[thread, "decode"] += n
            decoders.add(thread)
        elif any(w in leaf for w in WAITING):
            kinds[thread, "waiting"] += n
        else:
            kinds[thread, "python"] += n
            python[leaf] += n
    total = sum(threads.values())
    print(f"{total} samples; threads that ran decode: {len(decoders)}")
    for thread, n in threads.most_common():
        parts = ", ".join(f"{k} {kinds[thread, k] / n:.0%}" for k in ("decode", "waiting", "python"))
        print(f"  {thread}: {n} samples: {parts}")
    print("costliest Python frames (share of all samples):")
    for leaf, n in python.most_common(10):
        print(f"  {n / total:6.2%}  {leaf}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=("stock", "logits", "pipelined", "both"), default="stock")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--requests", type=int, default=6)
    args = parser.parse_args()
    import openai

    scratch = Path(tempfile.mkdtemp(prefix="akash-nb-profile-"))
    os.environ["AKASH_NB_STATE_DIR"] = str(scratch)
    server = measure.start_variant(args.variant, scratch / "server.log")
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
        ask = [{"role": "user", "content": "Hi"}]
        measure.via_server(client, server.model, ask, max_tokens=4, temperature=0)
        raw = scratch / "profile.txt"
        spy = subprocess.Popen([args.py_spy, "record", "--pid", str(server.process.pid), "--threads",
                                "--idle", "--nonblocking", "--rate", "250", "--format", "raw",
                                "--output", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
        runs = [measure.via_server(client, server.model,
                                   [{"role": "user", "content": f"Request {i}.\nWrite a long story about a "
                                                                "lighthouse keeper and a storm."}],
                                   max_tokens=128, temperature=0)
                for i in range(args.requests)]
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
        gap = measure.median(measure.median(r.gaps) for r in runs) * 1000
        print(f"{args.variant}: median {measure.median(r.decode_rate for r in runs):.1f} tokens/s, "
              f"median gap between tokens {gap:.2f} ms")
        summarise(raw)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
