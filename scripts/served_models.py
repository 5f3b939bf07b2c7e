"""Is every model the lessons fall back on still served? The weekly CI check (.github/workflows/weekly.yml).

    python scripts/served_models.py akashml [--base-url URL]

Prints one line per model (served or gone) as Markdown for the job summary; exits 1 when any is gone, so the
workflow opens an issue. The key comes from the usual places (akash_nb._core.config); it is never printed."""

from __future__ import annotations

import argparse
import sys

import akash_nb
from akash_nb._core.connection import served_models
from akash_nb._core.exceptions import AkashNBError
from akash_nb._core.providers import PROVIDERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("provider", choices=sorted(PROVIDERS))
    parser.add_argument("--base-url", help="another URL for the provider (a proxy, a test server)")
    args = parser.parse_args(argv)
    wanted = PROVIDERS[args.provider].fallback_models
    try:
        served = set(
            served_models(akash_nb.client(args.provider, base_url=args.base_url, show=False, max_retries=1))
        )
    except AkashNBError as error:
        print(f"- could not list {args.provider}'s models: {error.sentence}")
        return 1
    gone = [model for model in wanted if model not in served]
    print(f"## Models the lessons fall back on ({args.provider})")
    for model in wanted:
        print(f"- {model}: {'gone' if model in gone else 'served'}")
    return 1 if gone else 0


if __name__ == "__main__":
    sys.exit(main())
