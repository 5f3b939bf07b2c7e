"""What several test files share: the committed lessons and their parts (the lesson template's checks), a
parsed chat completion, and the Makefile's targets. Test files import this module, never one another."""

from __future__ import annotations

import functools
import re

from openai.types.chat import ChatCompletion
from processes import run
from project import ROOT

from akash_nb._core.providers import LOCAL_MODEL_NAME as MODEL
from akash_nb._tools import template
from akash_nb._tools.notebooks import lessons, solution_code

# --- the committed lessons ----------------------------------------------------------------------------------

LESSONS = lessons(ROOT / "notebooks")

GUIDE_TAG = "guide"
CLIENT_BLOCK = re.compile(r"client = openai\.OpenAI\(\s*api_key=api_key,\s*base_url=base_url,?\s*\)")


def markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def headings(nb) -> list[str]:
    return [
        line
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("#")
    ]


def code_before(nb, heading: str) -> str:
    """The source of every code cell before the markdown cell that starts with `heading`."""
    sources = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith(heading):
            break
        if cell.cell_type == "code":
            sources.append(cell.source)
    return "\n".join(sources)


def guide_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and GUIDE_TAG in c.metadata.get("tags", [])]


def template_problems(nb) -> list[str]:
    """What a lesson lacks of the template in STYLE.md (also used on a lesson made by new-lesson)."""
    problems, found = [], headings(nb)
    if not found or not found[0].startswith("# "):
        problems.append("a lesson starts with its title")
    problems += [
        f"missing section {s!r}"
        for s in ("## Set up", "## Try it", "## Your turn", "## Next")
        if s not in found
    ]
    sources = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    if "akash_nb.connection_values()" not in sources:
        problems.append("the set-up cell takes the client's two values from akash_nb.connection_values()")
    if not any(CLIENT_BLOCK.search(c.source) and "import openai" in c.source for c in guide_cells(nb)):
        problems.append(
            "a cell tagged `guide` holds the guide's own client block: import openai; "
            "client = openai.OpenAI(api_key=api_key, base_url=base_url)"
        )
    if "akash_nb.panel(" not in sources:
        problems.append("every lesson has the widget panel")
    if "akash_nb.exercises.check_" not in sources:
        problems.append("every lesson has an exercise with a check")
    if "client.chat.completions.create(" not in code_before(nb, "## Your turn"):
        problems.append("the lesson shows client.chat.completions.create(...) before its exercise")
    return problems + template.placeholder_problems(nb)


def exercise_problems(nb) -> list[str]:
    """Two hints and a solution under "Your turn", folded in markdown; no solution as a code cell."""
    problems = []
    text = markdown(nb)
    for hint in ("<summary>Hint 1</summary>", "<summary>Hint 2</summary>"):
        if hint not in text:
            problems.append(f"no {hint} under Your turn")
    if not any(solution_code(c) for c in nb.cells):
        problems.append("no solution (a folded <details> with a python block) under Your turn")
    hidden = [
        c for c in nb.cells if c.cell_type == "code" and c.metadata.get("jupyter", {}).get("source_hidden")
    ]
    if hidden:
        problems.append("a hidden code cell: Run All would execute it (put solutions in markdown)")
    return problems


# --- a parsed response -------------------------------------------------------------------------------------


def completion(
    content: str,
    finish_reason: str = "stop",
    model: str = MODEL,
    completion_tokens: int = 12,
    prompt_tokens: int = 5,
) -> ChatCompletion:
    """A response as the SDK parses it from a server's JSON (the same path real answers take)."""
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


# --- the Makefile ------------------------------------------------------------------------------------------

MAKEFILE = (ROOT / "Makefile").read_text()


@functools.cache  # asked once for every `make` line of every config and of docs/teaching.md
def make_targets() -> frozenset[str]:
    """The Makefile's targets, as make itself reads them (its database, nothing run)."""
    database = run(["make", "-pRrqn", "-f", "Makefile"], cwd=ROOT, timeout=60).stdout
    return frozenset(m.group(1) for m in re.finditer(r"^([a-zA-Z][\w-]*):", database, re.MULTILINE))
