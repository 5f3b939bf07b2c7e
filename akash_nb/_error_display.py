"""Errors in a notebook or a script as one sentence: IPython's custom exception handler and, in plain
Python, `sys.excepthook`, for the errors the package and the SDK raise (`is_ours`); a learner's own
exception keeps its traceback."""

from __future__ import annotations

import json
import os
import sys
from types import TracebackType

import openai
from IPython import get_ipython
from IPython.core.interactiveshell import InteractiveShell

from ._core import compat
from ._core import in_browser as browser
from ._core.exceptions import AkashNBError
from ._render import error_sentence, show


def _raised_by_us_or_the_sdk(tb: TracebackType | None) -> bool:
    """The exception came out of code in the openai package or in akash_nb (a frame of the traceback lies
    in one of them), not out of the learner's own code."""
    roots = tuple(
        os.path.dirname(module.__file__ or "") + os.sep for module in (openai, sys.modules[__package__])
    )
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(roots):
            return True
        tb = tb.tb_next
    return False


def is_ours(error: BaseException, tb: TracebackType | None = None) -> bool:
    """Errors shown as one sentence: ours (AkashNBError), the SDK's (openai.OpenAIError), and a JSON error
    raised inside the SDK or akash_nb (a provider's broken answer). Everything else is the learner's own
    exception, which keeps IPython's traceback."""
    if isinstance(error, AkashNBError | openai.OpenAIError):
        return True
    return isinstance(error, json.JSONDecodeError) and _raised_by_us_or_the_sdk(tb or error.__traceback__)


def install_error_display() -> None:
    """In IPython, show our errors and the SDK's as one sentence instead of a 40-line traceback.

    Only errors raised by openai or akash_nb (see `is_ours`): a learner's own exception, even a
    `json.JSONDecodeError` from their own `json.loads`, keeps IPython's usual traceback.
    The cell still fails as an error (so `Run all` stops, and nbval reports the sentence); the
    error's traceback is the sentence alone. `%tb` shows the full traceback, and the exception, with the
    original as `.original`, stays in `sys.last_value`. In a browser tab, what the tab cannot run
    (_core/in_browser.py's refusals, a cell's process, thread or socket) is a note instead: `Run all` goes on.
    """
    shell = get_ipython()
    if shell is None:
        _install_plain_excepthook()
        return

    def handler(
        shell: InteractiveShell,
        etype: type[BaseException],
        value: BaseException,
        tb: TracebackType | None,
        tb_offset: int | None = None,
    ) -> list[str]:
        if not is_ours(value, tb):
            # The learner's own error: IPython's own traceback, exactly as without akash_nb.
            stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
            compat.show_traceback(shell, etype, value, stb)
            return stb
        explained = error_sentence(value)
        stb = [f"\x1b[31m{type(explained).__name__}\x1b[0m: {explained.sentence} (full traceback: %tb)"]
        # IPython ignores a custom handler's return value: this sends the error to the front end (and to
        # nbval, which reports it), as IPython's own showtraceback does.
        compat.show_traceback(shell, etype, value, stb)
        return stb

    if browser.IN_BROWSER:  # a tab's cells that start a process, thread or socket: one sentence too
        shell.set_custom_exc(
            (AkashNBError, openai.OpenAIError, json.JSONDecodeError, *browser.CELL_FAILURES),
            browser.wrap_handler(handler, lambda sentence: show("error", sentence)),
        )
        return
    shell.set_custom_exc((AkashNBError, openai.OpenAIError, json.JSONDecodeError), handler)


TRACEBACK_ENV = "AKASH_NB_TRACEBACK"  # set to 1 for the full traceback of an error in plain Python


def _install_plain_excepthook() -> None:
    """In plain Python, an uncaught error of ours (`is_ours`) prints its sentence, not a traceback (unless
    AKASH_NB_TRACEBACK=1); any other exception keeps Python's own hook."""
    previous = sys.excepthook
    if getattr(previous, "akash_nb", False):
        return

    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not is_ours(value, tb) or os.environ.get(TRACEBACK_ENV):  # the same rule as in a notebook
            previous(etype, value, tb)
            return
        explained = error_sentence(value)
        print(
            f"{type(explained).__name__}: {explained.sentence} (full traceback: {TRACEBACK_ENV}=1)",
            file=sys.stderr,
            flush=True,
        )

    hook.akash_nb = True  # type: ignore[attr-defined]
    sys.excepthook = hook
