"""The embedded server with one change, for side-by-side experiments (never used by the lessons).

    python benchmarks/tuned_server.py --variant upstream <the arguments of akash_nb.local.server_command>

Variants:

- `stock`: exactly `python -m akash_nb.local`, the server the lessons use.
- `upstream`: the same server without its two speed changes, i.e. llama-cpp-python's own streaming path
  (`get_event_publisher`, one thread-pool job per token, each waiting for the previous chunk to be sent)
  and its server's default `logits_all=True`. It is the "before" that `make bench` measures beside
  `stock`, so the gain stays a measurement rather than a claim. Add a variant here to try the next idea.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = ("stock", "upstream")


def _upstream() -> None:
    from llama_cpp.server import app as server_app
    from llama_cpp.server import settings

    from akash_nb import local

    # local._llama_app installs local._stream_chunks at call time: hand it llama-cpp-python's own instead.
    local._stream_chunks = server_app.get_event_publisher

    class ModelSettings(settings.ModelSettings):
        def model_post_init(self, context) -> None:
            super().model_post_init(context)
            self.logits_all = True  # llama-cpp-python's server default; local._llama_app asks for False

    settings.ModelSettings = ModelSettings  # local._llama_app imports it from here at call time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=VARIANTS, default="stock")
    args, rest = parser.parse_known_args()
    if args.variant == "upstream":
        _upstream()
    from akash_nb import local

    local.serve(rest)


if __name__ == "__main__":
    main()
