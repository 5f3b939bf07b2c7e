"""The embedded server with proposed changes, for side-by-side experiments (never used by the lessons).

    python benchmarks/tuned_server.py --variant both <the arguments of akash_nb.local.server_command>

Variants (each one change on top of `python -m akash_nb.local`, so each can be measured alone):

- `stock`: exactly `akash_nb.local.serve`.
- `logits`: `logits_all=False`. llama-cpp-python's *server* defaults ModelSettings.logits_all to True (the
  `Llama` class defaults it to False): every decoded token's 49,152 logits are copied into a numpy array,
  and a prompt computes and copies logits for every prompt token (2k tokens: 400 MB), only to serve
  `logprobs`, which the lessons never ask for.
- `pipelined`: the streaming path generates the whole answer in one worker thread that hands each chunk,
  already JSON, to the event loop without waiting. llama-cpp-python's own path (`get_event_publisher`,
  `iterate_in_threadpool`) runs every `next()` as a separate thread-pool job, so each token waits for the
  previous one to be serialized, framed and written, and for two thread wake-ups: all of it on the
  critical path, and on a loaded 2-core machine each wake-up can wait for a core.
- `both`: `logits` and `pipelined`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = ("stock", "logits", "pipelined", "both")


def _without_logits_all() -> None:
    from llama_cpp.server import settings

    class ModelSettings(settings.ModelSettings):
        logits_all: bool = False

    settings.ModelSettings = ModelSettings  # akash_nb.local.serve imports it from here at call time


def _pipelined() -> None:
    import anyio
    from llama_cpp.server import app as server_app

    async def get_event_publisher(request, inner_send_chan, body, body_model, llama_call, kwargs):
        async with contextlib.asynccontextmanager(server_app.get_llama_proxy)() as llama_proxy:
            llama = server_app.prepare_request_resources(body, llama_proxy, body_model, kwargs)
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue = asyncio.Queue()
            stop = threading.Event()
            done = object()

            def produce() -> None:
                try:
                    for chunk in llama_call(llama, **kwargs):
                        loop.call_soon_threadsafe(queue.put_nowait, json.dumps(chunk))
                        if stop.is_set():
                            break
                except BaseException as exc:  # noqa: BLE001 — re-raised on the event loop
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
                else:
                    loop.call_soon_threadsafe(queue.put_nowait, done)

            worker = loop.run_in_executor(None, produce)
            try:
                async with inner_send_chan:
                    while (item := await queue.get()) is not done:
                        if isinstance(item, BaseException):
                            raise item
                        await inner_send_chan.send({"data": item})
                    await inner_send_chan.send({"data": "[DONE]"})
            finally:
                stop.set()  # a client that left: stop generating at the next token
                with anyio.CancelScope(shield=True):
                    await worker  # the model lock is held until the generating thread is done with it

    server_app.get_event_publisher = get_event_publisher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=VARIANTS, default="stock")
    args, rest = parser.parse_known_args()
    if args.variant in ("logits", "both"):
        _without_logits_all()
    if args.variant in ("pipelined", "both"):
        _pipelined()
    from akash_nb import local

    local.serve(rest)


if __name__ == "__main__":
    main()
