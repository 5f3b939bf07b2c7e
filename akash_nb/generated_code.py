"""Code that a model wrote: find it in the reply, check it parses, and test it in a separate process."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from IPython import get_ipython

from ._core import in_browser
from ._core.parameters import number_param, text_param

# ```python ... ``` (or ```py, or a bare ```); the closing fence may be missing when the reply was cut off.
FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Extracted:
    code: str
    closed: bool  # False: the reply ended inside the code block (e.g. finish_reason == "length")
    language: str


def extract_code(reply: str, language: str = "python") -> Extracted | None:
    """The first fenced code block in `reply` in `language` (or untagged), or None if there is none."""
    text_param(
        "reply",
        reply,
        example="extract_code(response.choices[0].message.content)",
        optional=False,
        allow_empty=True,
    )
    text_param("language", language, example="language='python'", optional=False, identifier=True)
    for match in FENCE.finditer(reply):
        lang = match.group("lang").lower()
        if lang in ("", language, "py" if language == "python" else language):
            body = match.group("body")
            closed = match.end() < len(reply) or reply.rstrip().endswith("```")
            return Extracted(body.rstrip(), closed, lang or language)
    return None


@dataclass(frozen=True)
class SyntaxCheck:
    ok: bool
    message: str  # "parses" or where and why it does not


def check_syntax(code: str) -> SyntaxCheck:
    text_param("code", code, example="check_syntax(extracted.code)", optional=False, allow_empty=True)
    try:
        ast.parse(code)
    except (SyntaxError, ValueError) as error:  # ValueError: a NUL byte in the source
        if not isinstance(error, SyntaxError):
            return SyntaxCheck(False, f"line 1: {error}")
        return SyntaxCheck(False, f"line {error.lineno}: {error.msg}")
    return SyntaxCheck(True, "parses")


@dataclass(frozen=True)
class TestRun:
    passed: bool
    output: str  # the last lines of what the test printed, or why it stopped
    seconds: float
    timed_out: bool

    def __str__(self) -> str:
        verdict = "passed" if self.passed else ("timed out" if self.timed_out else "failed")
        return f"Tests {verdict} ({self.seconds:.2f} s)" + (f": {self.output}" if self.output else "")


def run_tests(code: str, tests: str, *, timeout: float = 5.0) -> TestRun:
    """Run `code` then `tests` (plain asserts) in an isolated Python process with a time limit."""
    in_browser.refuse("akash_nb.generated_code.run_tests (it runs the tests in a new Python process)")
    text_param("code", code, example="run_tests(extracted.code, tests)", optional=False, allow_empty=True)
    text_param("tests", tests, example="tests='assert add(1, 2) == 3'", optional=False, allow_empty=True)
    number_param("timeout", timeout, low=0.1, high=600, example="timeout=5", optional=False)
    with tempfile.TemporaryDirectory(prefix="akash-nb-code-") as folder:
        script = Path(folder) / "candidate.py"
        script.write_text(code + "\n\n# --- tests ---\n" + tests + "\nprint('all tests passed')\n")
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-I", str(script)],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return TestRun(False, f"stopped after {timeout:.0f} s", time.perf_counter() - started, True)
        seconds = time.perf_counter() - started
    lines = (done.stdout + done.stderr).strip().splitlines()
    last = lines[-1] if lines else ""
    return TestRun(done.returncode == 0, last, seconds, False)


def insert_next_cell(code: str) -> bool:
    """Put `code` into a new cell below the current one (JupyterLab, Notebook). False outside IPython."""
    text_param("code", code, example="insert_next_cell(extracted.code)", optional=False, allow_empty=True)
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_next_input(code, replace=False)
    return True
