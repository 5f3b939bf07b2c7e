"""`akash-nb`: the one command line, for learners, teachers and maintainers."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from ._core.exceptions import AkashNBError, engine_error, file_error


def _serve(args: argparse.Namespace) -> int:
    from ._engine import embedded as local

    if args.share:
        from ._engine import class_server as share

        try:
            share.share(
                port=share.SHARE_PORT if args.port is None else args.port,
                slots=share.SHARE_SLOTS if args.slots is None else args.slots,
                host=args.host or share.SHARE_HOST,
            )
        except (KeyboardInterrupt, share.Ended):
            pass
        print("Stopped sharing.")
        return 0
    started = time.monotonic()
    server = local.ensure_server()
    print(
        f"Embedded model {server.model} at {server.base_url} (pid {server.pid}, "
        f"ready in {time.monotonic() - started:.1f} s)."
    )
    print(f"Its key is in {local.state_file(server.config)} (mode 0600); notebooks find it themselves.")
    if args.print_key:
        print(f"Key: {server.key.reveal()}")
    print("Stop it with: akash-nb stop")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from ._engine import embedded as local

    if args.all:
        count = local.stop_all()
        print(f"Stopped {count} embedded model server(s) recorded in {local.state_dir()}.")
    else:
        stopped = local.stop()
        print("Stopped the embedded model server." if stopped else "No embedded model server was running.")
    return 0


def _engine(args: argparse.Namespace) -> int:
    from ._engine import builds as engine
    from ._engine import weights as model

    found = engine.ensure() if args.build else engine.find()
    weights = model.ensure() if args.build else model.find()
    if found is None:
        why = engine.wheel_problem() if engine.route() != "build" else None
        print(
            f"No engine yet{f' ({why})' if why else ''}; `akash-nb engine --build` builds llama-server "
            f"into {engine.build_dir()}."
        )
    else:
        print(f"engine: {found.describe()}")
    if weights is None:
        print(f"No model file yet; `akash-nb engine --build` fetches it into {model.cached_model()}.")
    else:
        print(f"model: {weights}")
    return 0 if found is not None and weights is not None else 1


def _doctor(args: argparse.Namespace) -> int:
    from . import doctor

    configured = doctor.configured_provider()
    rows = doctor.probe_all(configured)
    print(doctor.format_table(rows))
    print(doctor.verdict(rows, configured))
    # Non-zero when the provider the lessons would use fails (another provider working does not help them).
    return 0 if any(row.ok and row.provider == configured for row in rows) else 1


def _run(args: argparse.Namespace) -> int:
    from ._tools import notebooks

    return 1 if notebooks.run_all(_lessons(args), Path(args.out)) else 0


def _lessons(args: argparse.Namespace) -> list[Path]:
    """The lessons named on the command line, else every lesson in --folder."""
    from ._tools import notebooks

    return [Path(p) for p in args.notebooks] or notebooks.lessons(Path(args.folder))


def _add_lessons(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("notebooks", nargs="*", help=f"lessons to {verb} (default: every lesson in --folder)")
    parser.add_argument("--folder", default="notebooks")


def _check_engine_can_be_had() -> None:
    """The student set (`make student`) has no engine and nothing to build one with: say what to do."""
    from ._engine import builds as engine

    if engine.find() is None and engine.student_set():
        raise engine_error("student-set")


def _lab(args: argparse.Namespace) -> int:
    from ._core import config
    from ._engine import embedded as local

    settings = config.resolve()
    if settings.provider.name == "local":
        _check_engine_can_be_had()
        server = local.ensure_server()
        print(f"Embedded model {server.model} is ready at {server.base_url}.")
    else:
        print(f"Lessons will use {settings.provider.title} (key: {settings.key_source}).")
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter")
    if jupyter is None:
        print("JupyterLab is not installed here: run `make lab` from the project folder.", file=sys.stderr)
        return 1
    command = [jupyter, "lab", f"--notebook-dir={args.folder}", *args.jupyter_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Workshop containers and cloud VMs often run as root; JupyterLab refuses that without the flag.
        command.append("--allow-root")
    if sys.platform == "win32":
        # Windows has no exec: os.execv starts a new process and returns the prompt at once, leaving
        # JupyterLab behind it; waiting for it keeps Ctrl-C and the exit code where the student typed.
        import subprocess

        return subprocess.call(command)
    os.execv(jupyter, command)
    return 0  # not reached


def _join(args: argparse.Namespace) -> int:
    from ._engine import join

    print(join.join(args.url, args.key, Path(args.env) if args.env else None))
    return 0


def _export_docs(args: argparse.Namespace) -> int:
    from ._tools import docs

    for path in docs.export(Path(args.folder), Path(args.out)):
        print(path)
    return 0


def _record(args: argparse.Namespace) -> int:
    from ._tools import notebooks

    return notebooks.record(
        [Path(p) for p in args.notebooks],
        upstream=args.upstream,
        folder=args.recordings,
        fresh=args.fresh,
        prune=args.prune,
    )


def _refresh(args: argparse.Namespace) -> int:
    from ._tools import notebooks

    return 1 if notebooks.refresh(_lessons(args)) else 0


def _errors_table(args: argparse.Namespace) -> int:
    from ._tools import errors_doc

    print(("rewrote " if errors_doc.write_docs(args.file) else "up to date: ") + args.file)
    return 0


def _new_lesson(args: argparse.Namespace) -> int:
    from ._tools import template

    path = template.new_lesson(Path(args.folder), args.name)
    print(
        f"Wrote {path}. Write each [write: ...] text in it (the tests fail while one is left), then "
        "`make record` (records its requests and fills in its outputs) and `make test`; README.md, "
        '"Adding a lesson", has the rules the tests check.'
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="akash-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start (or reuse) the shared embedded model server")
    serve.add_argument("--print-key", action="store_true", help="print the server's key (for curl)")
    share = serve.add_argument_group(
        "share mode",
        "serve the embedded model to the room's network, in the foreground, behind a new key "
        "that it prints; without --share the server listens on 127.0.0.1 only",
    )
    share.add_argument("--share", action="store_true", help="listen on every address of this machine")
    share.add_argument(
        "--slots", type=int, metavar="N", help="requests answered at once; more wait in line (default 32)"
    )
    share.add_argument("--port", type=int, help="port to listen on (default 8080)")
    share.add_argument("--host", help="address to listen on (default 0.0.0.0: every address)")
    serve.set_defaults(func=_serve)

    stop = sub.add_parser("stop", help="stop the embedded model server of this configuration")
    stop.add_argument(
        "--all",
        action="store_true",
        help="stop every embedded server recorded in the state folder (other checkouts' too)",
    )
    stop.set_defaults(func=_stop)

    engine = sub.add_parser("engine", help="which llama-server and model file make the embedded model")
    engine.add_argument(
        "--build", action="store_true", help="build llama-server and fetch the model now if missing"
    )
    engine.set_defaults(func=_engine)

    doctor = sub.add_parser("doctor", help="check every provider: configured, reachable, models, latency")
    doctor.set_defaults(func=_doctor)

    run = sub.add_parser("run", help="execute lessons headless on the configured provider")
    _add_lessons(run, "run")
    run.add_argument("--out", default="build/run")
    run.set_defaults(func=_run)

    lab = sub.add_parser("lab", help="start JupyterLab on the lessons")
    lab.add_argument("--folder", default="notebooks")
    lab.set_defaults(func=_lab)  # any option akash-nb does not know is passed to jupyter lab (main)

    join = sub.add_parser("join", help="use a class server: check it answers, then write its lines into .env")
    join.add_argument("url", help="the URL on the teacher's screen, e.g. http://192.168.1.20:8080/v1")
    join.add_argument("key", help="the key on the teacher's screen")
    join.add_argument("--env", metavar="FILE", help="the .env file to write (default: .env here)")
    join.set_defaults(func=_join)

    export_docs = sub.add_parser("export-docs", help="the guide page and the lessons' HTML, from the lessons")
    export_docs.add_argument("--folder", default="notebooks")
    export_docs.add_argument("--out", default="build/docs")
    export_docs.set_defaults(func=_export_docs)

    record = sub.add_parser("record", help="execute lessons, recording every request they make for replay")
    record.add_argument("notebooks", nargs="*", help="the lessons to record (make record names them all)")
    record.add_argument(
        "--upstream", help="local, akashml, or an http(s) URL (default: AKASH_NB_RECORD_UPSTREAM, else local)"
    )
    record.add_argument(
        "--recordings",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="default: AKASH_NB_RECORDINGS, else recordings/",
    )
    record.add_argument("--fresh", action="store_true", help="ask the upstream again even when recorded")
    record.add_argument("--prune", action="store_true", help="delete recordings no lesson used")
    record.set_defaults(func=_record)

    refresh = sub.add_parser("refresh", help="re-execute lessons under replay and write their outputs back")
    _add_lessons(refresh, "refresh")
    refresh.set_defaults(func=_refresh)

    errors_table = sub.add_parser(
        "errors-table", help="rewrite the case table in docs/errors.md from the error tables"
    )
    errors_table.add_argument("file", nargs="?", default="docs/errors.md")
    errors_table.set_defaults(func=_errors_table)

    new_lesson = sub.add_parser("new-lesson", help="a new lesson from the template: notebooks/NN-NAME.ipynb")
    new_lesson.add_argument("name", help="lowercase words joined by hyphens, e.g. embeddings")
    new_lesson.add_argument("--folder", default="notebooks")
    new_lesson.set_defaults(func=_new_lesson)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.jupyter_args = unknown
    if args.command == "serve" and not args.share:
        given = [
            flag
            for flag, value in (("--host", args.host), ("--port", args.port), ("--slots", args.slots))
            if value is not None
        ]
        if given:  # leaving loopback takes the explicit flag
            parser.error(
                f"{', '.join(given)} only with --share; without it the server listens on 127.0.0.1 only."
            )
    try:
        return int(args.func(args))
    except AkashNBError as error:
        print(f"akash-nb: {error.sentence}", file=sys.stderr)
        return 2
    except OSError as error:  # a path no reader above turned into its own sentence: still one line
        sentence = file_error(error.filename or "?", "The path", error, "check it and run the command again")
        print(f"akash-nb: {sentence.sentence}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
