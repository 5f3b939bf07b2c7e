"""llama.cpp's server from the prebuilt `xllamacpp` wheel, as a program of its own that takes the subset of
`llama-server`'s command line that `akash_nb._engine.llama_server.server_command` writes: `python -m
_engine/wheel_server.py --model ... --port ...`. It runs in its own process, never in a kernel, so a native
crash cannot take a lesson down, and it exits cleanly on SIGTERM, SIGINT or Ctrl-Break."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from .._core import in_browser
from .builds import WHEEL_PACKAGE, wheel_label


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(prog="python -m akash_nb._engine.wheel_server", allow_abbrev=False)
    options.add_argument("--version", action="store_true")
    options.add_argument("--model", required=False)
    options.add_argument("--alias")
    options.add_argument("--host", default="127.0.0.1")
    options.add_argument("--port", type=int, default=8080)
    options.add_argument("--parallel", type=int, default=1)
    options.add_argument("--ctx-size", type=int, default=4096)
    options.add_argument("--threads", type=int, default=2)
    options.add_argument("--threads-batch", type=int, default=2)
    options.add_argument("--n-predict", type=int, default=-1)
    options.add_argument("--api-key-file")
    options.add_argument("--cache-ram", type=int, default=None, help="MiB of prompt cache (-1: no limit)")
    options.add_argument("--kv-unified", action="store_true")
    options.add_argument("--threads-http", type=int, default=None)
    options.add_argument("--no-webui", action="store_true")
    options.add_argument("--metrics", action="store_true")
    return options


def params(args: argparse.Namespace, p: Any) -> Any:
    """`p`, an xllamacpp.CommonParams, set from `args`: the key is read from its file, never from argv."""
    p.model.path = args.model
    if args.alias:
        p.model_alias = {args.alias}
    p.hostnames = [args.host]
    p.port = args.port
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx_size
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads_batch
    p.n_predict = args.n_predict
    p.kv_unified = args.kv_unified
    if args.cache_ram is not None:
        p.cache_ram_mib = args.cache_ram
    if args.threads_http is not None:
        p.n_threads_http = args.threads_http
    p.ui = not args.no_webui
    p.endpoint_metrics = args.metrics
    p.use_jinja = True  # llama-server's default since b5xxx: the model's own chat template, tools included
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as keys:
            p.api_keys = [line.strip() for line in keys if line.strip()]
    return p


def main(argv: Sequence[str] | None = None) -> int:
    in_browser.refuse("The wheel server (a process listening on the network)")
    args = parser().parse_args(argv)
    if args.version:
        print(f"version: {wheel_label(metadata.version(WHEEL_PACKAGE))}", flush=True)
        return 0
    if not args.model:
        print("error: --model is required", file=sys.stderr)
        return 2
    import xllamacpp  # the `local` extra's engine; this module runs only as the engine's own program

    stopping = threading.Event()

    def stop(number: int, frame: object) -> None:
        stopping.set()

    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, stop)
    try:
        server = xllamacpp.Server(params(args, xllamacpp.CommonParams()))  # loads, then serves in threads
    except (RuntimeError, OSError, ValueError) as error:  # a model llama.cpp cannot load, a port taken, ...
        print(f"error: llama.cpp's server did not start: {error} (model {args.model})", file=sys.stderr)
        return 1
    print(
        f"akash_nb._engine.wheel_server: listening on {server.listening_address}", file=sys.stderr, flush=True
    )
    while not stopping.wait(0.5):  # a timeout, so Ctrl-C reaches the handler on Windows too
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    # llama.cpp's server threads are still running: the interpreter's normal exit would destroy them while
    # joinable, which C++ reports as "terminate called without an active exception". Nothing is left to
    # save, so leave at once.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
