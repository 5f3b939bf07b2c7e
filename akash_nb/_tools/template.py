"""The lesson template: the cells every lesson shares, and `akash-nb new-lesson NAME`.

akash-nb new-lesson embeddings      # writes notebooks/06-embeddings.ipynb (the next free number)
make record                         # records its requests from the embedded model, fills its outputs
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from .._core.exceptions import TOOLS, ConfigError, table_error
from . import notebooks

SETUP_CELL = """\
import akash_nb

api_key, base_url = akash_nb.connection_values()"""

CLIENT_BLOCK = """\
import openai

# Set your API key
client = openai.OpenAI(
    api_key=api_key,
    base_url=base_url,
)"""


def setup_markdown() -> str:
    return """\
## Set up

The guide builds its client from two values: your key and the API's base URL.
`akash_nb.connection_values()` finds them for the provider you configured (the embedded model if you
configured none: see [00-setup](00-setup.ipynb)) and shows the provider, the URL and where the key came
from. It never shows the key."""


def hints_and_solution(hint1: str, hint2: str, solution: str, *, title: str = "Solution") -> str:
    """The markdown under an exercise: two hints and a solution, each folded until clicked open. Markdown,
    so Run All never runs the solution (`make record` does, to record its requests)."""
    return f"""\
<details><summary>Hint 1</summary>

{hint1}

</details>

<details><summary>Hint 2</summary>

{hint2}

</details>

<details><summary>{title} (try first; Run All does not run it: copy it into the cell above)</summary>

```python
{solution}
```

</details>"""


NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# Every text of the template a teacher must write is marked so; a lesson that still has one fails
# tests/test_notebooks.py (`placeholder_problems`).
PLACEHOLDER = re.compile(r"\[write: ([^\]]+)\]")


def placeholder_problems(nb: nbformat.NotebookNode) -> list[str]:
    """One sentence for each cell that still holds the template's unfilled text, naming the cell (as
    `notebooks.cell_name` does) and what to write there."""
    return [
        f"{notebooks.cell_name(nb, index)} still has the template's placeholder "
        f"[write: {found.group(1)}]: write {found.group(1)} in its place."
        for index, cell in enumerate(nb.cells)
        for found in PLACEHOLDER.finditer(cell.source)
    ]


def _cells(title: str) -> list[nbformat.NotebookNode]:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    guide = {"tags": [notebooks.GUIDE_TAG]}
    return [
        md(
            f"# {title}\n\nAfter this lesson you can "
            "[write: one sentence, what the learner will be able to do]."
        ),
        md(setup_markdown()),
        code(SETUP_CELL),
        md("Then the guide's own client block: plain `openai` code, like every cell tagged `guide`."),
        code(CLIENT_BLOCK, metadata=guide),
        code("model = akash_nb.choose_model(client)"),
        md(
            "## The guide's call\n\n[write: what this call asks the model, and each parameter it sets the "
            "first time it appears]"
        ),
        code(
            "response = client.chat.completions.create(\n    model=model,\n"
            '    messages=[{"role": "user", "content": "Tell me a fun fact about octopuses."}],\n'
            "    max_tokens=60,\n)\n\nprint(response.choices[0].message.content)",
            metadata=guide,
        ),
        md(
            "## What just happened\n\n[write: what to read from the response below, and what it tells the "
            "learner]"
        ),
        code(
            'print("model:        ", response.model)\nprint("finish_reason:", '
            'response.choices[0].finish_reason)\nprint("usage:        ", response.usage.prompt_tokens, '
            '"prompt +", response.usage.completion_tokens, "completion tokens")'
        ),
        md("## Try it\n\nChange the prompt or `max_tokens`, and press **Run**."),
        code('panel = akash_nb.panel(client, "Tell me a fun fact about octopuses.", max_tokens=60)\npanel'),
        code("panel.run()"),
        md(
            "## Your turn\n\n[write: an exercise on this lesson's skill, with a check that can fail; the "
            "template's own follows] Ask for a long answer with `max_tokens=20` and assign the response to "
            "`short_response`. The check wants the model stopped by that budget."
        ),
        code(
            "short_response = None  # your call here\n\n"
            "akash_nb.exercises.check_length_stop(short_response, budget=20)"
        ),
        md(
            hints_and_solution(
                "Start from the call above and set `max_tokens=20`.",
                'Ask for something long, so that `finish_reason` comes back `"length"`.',
                "short_response = client.chat.completions.create(\n    model=model,\n"
                '    messages=[{"role": "user", "content": "Tell me everything about octopuses."}],\n'
                "    max_tokens=20,\n)\n\nakash_nb.exercises.check_length_stop(short_response, budget=20)",
            )
        ),
        md("## Next\n\n[write: a link to the next lesson, and what it teaches]"),
    ]


def new_lesson(folder: Path, name: str) -> Path:
    """Write `folder/NN-name.ipynb` (NN: one more than the highest lesson number) from the template."""
    if not NAME.match(name):
        raise table_error(TOOLS, "lesson-name-invalid", ConfigError, name=repr(name))
    numbered = [p for p in notebooks.lessons(folder) if re.match(r"\d\d-", p.name)]
    numbers = [int(p.name[:2]) for p in numbered]
    existing = [p for p in numbered if p.name[3:] == f"{name}.ipynb"]
    if existing:
        raise table_error(TOOLS, "lesson-exists", ConfigError, file=existing[0].name, folder=folder)
    path = folder / f"{max(numbers, default=-1) + 1:02d}-{name}.ipynb"
    nb = nbformat.v4.new_notebook(cells=_cells(name.replace("-", " ").capitalize()))
    for index, cell in enumerate(nb.cells):
        cell.id = f"{path.name[:2]}-{index:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebooks.normalize(nb), path)  # the committed form: one kernelspec, no machine metadata
    return path
