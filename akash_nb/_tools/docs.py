"""The guide page, regenerated from the tested lessons: `akash-nb export-docs` / `make docs` writes the seed
guide's Markdown page, plain `openai` code with the outputs the lessons printed, and every lesson as HTML."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode

from .._core.exceptions import TOOLS, AkashNBError, table_error
from .._core.files import ensure_folder
from .._core.providers import PROVIDERS, RETIRED_ON
from . import notebooks
from .notebooks import GUIDE_TAG, read_lesson, sanitize

PAGE_NAME = "akash-chat-api-guide.md"  # the seed's file name: the page can replace it where it is published
GUIDE_HEADING = "## The guide's"
SETUP_HEADING = "## Set up"
GUIDE_CALL = "client.chat.completions.create("
SIMILAR = "You should receive something similar to:"

# The seed's keys, in the seed's order. The seed's title named a service that was retired on RETIRED_ON; the
# calls it teaches now run on AkashML (its paid successor) or any OpenAI-compatible server, so the title
# says that. "GPT" becomes "LLM": no GPT model answers here.
FRONT_MATTER = {
    "categories": ["Guides"],
    "tags": ["Machine Learning", "LLM", "API", "AkashML"],
    "weight": 1,
    "title": "AkashML and OpenAI-compatible chat APIs",
    "linkTitle": "Chat API (AkashML)",
}


@dataclass(frozen=True)
class Section:
    heading: str  # the seed's heading, exactly
    lesson: str  # the lesson file's stem
    lead: str  # the seed's sentence under the heading, brought up to date


# The seed's example sections, in the seed's order, and the lesson each one is regenerated from.
SECTIONS = (
    Section(
        "### Basic Text Completion",
        "01-basic-completion",
        "This example demonstrates how to generate a text completion based on a prompt.",
    ),
    Section(
        "### Conversation with AkashChat",
        "02-conversation",
        "This example simulates a conversation, maintaining the context across multiple interactions: "
        "each reply is sent back with the next question, because the API remembers nothing between "
        "calls.",
    ),
    Section(
        "### Generating Code Snippets",
        "03-code-generation",
        "You can use the same call to generate code snippets.",
    ),
    Section(
        "### Summarization",
        "04-summarization",
        "For summarizing text, you still use the `chat.completions.create()` method.",
    ),
)

# Beyond the seed: lessons that teach what a learner of AkashML, vLLM or llama.cpp needs next, each on the
# page as a "Going further" section with its plain openai code.
GOING_FURTHER: tuple[Section, ...] = (
    Section(
        "### Structured output",
        "06-structured-output",
        "A program needs fields, not prose. Describe them once as a Pydantic model and send its JSON "
        "schema as `response_format`: a server that supports `json_schema` (llama.cpp, vLLM) then allows "
        "only tokens that keep the answer valid, and Pydantic (or `client.chat.completions.parse`) reads "
        "it. Valid is not correct: the schema fixes the shape, not the facts, so check `finish_reason` "
        "and compare the fields with your source.",
    ),
    Section(
        "### Failures and cost",
        "07-failures-and-cost",
        "Every failed request raises an exception of its own class: `AuthenticationError` (401), "
        "`BadRequestError` (400, e.g. a prompt over the context), `NotFoundError` (404), `RateLimitError` "
        "(429), `InternalServerError` (500 and up, AkashML's 504 and 529 among them), `APIStatusError` for "
        "402 (no credits), and `APITimeoutError` when no answer came in time. The SDK retries 408, 409, 429, "
        "500 and up, timeouts and dropped connections `max_retries` times (2 by default), waiting what "
        "`Retry-After` asks. A stream reports its usage only when asked, in one last chunk with no choices; "
        "price it at your model's current per-million prices.",
    ),
    Section(
        "### Tool calling",
        "08-tool-calling",
        "The model never runs your code. You describe each function in `tools` (a name, a description, a "
        "JSON schema); a model trained for tools answers with `message.tool_calls`. Each call's "
        "`function.arguments` is a JSON string the model wrote, so validate it before anything runs, send "
        "each result back as a `tool` message with the call's id, and ask again until the answer has no "
        "tool call, with a limit on rounds. SmolLM2-135M's chat template has no place for tools, so the "
        "embedded model never calls one: use a tool-trained model.",
    ),
)

GOING_FURTHER_INTRO = """\
## Going further

The seed stopped at these four calls. Three more lessons go where a program built on them goes next: answers
a program can read, failures and what a request costs, and letting the model call your functions. The code
below is the same `openai` code those lessons run."""

AKASHML = PROVIDERS["akashml"]
PAGE_MODEL = AKASHML.fallback_models[0]

INTRO = f"""\
This guide shows how to call an OpenAI-compatible chat API from Python with the `openai` library: a
single completion, a conversation, code generation and summarization. It was first written for the Akash
Chat API (`chatapi.akash.network`), which was retired on {RETIRED_ON}. The same calls run unchanged on
**AkashML** (`{AKASHML.base_url}`), its paid successor, and on any server that speaks the OpenAI chat
API, such as vLLM or llama.cpp deployed on Akash.

The code below is taken from lessons that are executed and tested; every output is what that code printed
when the lesson ran, and says which provider and model printed it."""

INTRODUCTION = """\
## Introduction

To get an AkashML key:

1. Create an account at [akashml.com](https://akashml.com) and sign in.
2. Add credits to the account: AkashML is paid, and every request is billed by its tokens.
3. Open **Settings → API Keys**, create a key and copy it (it starts with `akml-` and is shown once).

Keep the key out of your code: put it in the environment as `AKASHML_API_KEY`. To run your own model
instead, deploy vLLM (GPU) or llama.cpp (CPU) on Akash and use its `https://<provider-host>/v1` as the
base URL."""

PYTHON_EXAMPLES = """\
## Python Examples

You need Python 3.10 or newer. To check, run:

```sh
python --version
```

Install the OpenAI library, and put your key in the environment:

```sh
pip install openai
export AKASHML_API_KEY=akml-...
```

Every example below starts from these three values. `model` is one of the models AkashML serves; the
list is `client.models.list()`:"""

PREAMBLE = f"""\
import os

api_key = os.environ["AKASHML_API_KEY"]  # your AkashML key (see Introduction)
base_url = "{AKASHML.base_url}"
model = "{PAGE_MODEL}"  # any id from client.models.list()"""

LESSONS = """\
## The lessons

Each example above is one lesson, with more around the guide's call: what the response holds, the HTTP
underneath, a parameter panel, and an exercise with hints and a check. Read them here:"""


class DocsError(AkashNBError, ValueError):
    """The lessons do not have the shape the page is built from."""


# --- sanitizing: notebooks.SANITIZE, the same rules as tests/sanitize.cfg ----------------------------------

TEXT_MIMETYPES = ("text/plain", "text/html", "text/markdown")
LESSON_LINK = re.compile(r"\((\d\d-[\w-]+)\.ipynb\)")


def _preprocessors() -> list[Preprocessor]:
    class Sanitize(Preprocessor):
        """Ports and kernel paths out of every output; lesson links point at the HTML copies."""

        def preprocess_cell(
            self, cell: NotebookNode, resources: dict[str, Any], index: int
        ) -> tuple[NotebookNode, dict[str, Any]]:
            if cell.cell_type == "markdown":
                cell.source = LESSON_LINK.sub(r"(\1.html)", cell.source)
            for output in cell.get("outputs", []):
                if "text" in output:
                    output.text = sanitize(output.text)
                for mimetype in TEXT_MIMETYPES:
                    if mimetype in output.get("data", {}):
                        output.data[mimetype] = sanitize(output.data[mimetype])
            return cell, resources

    return [Sanitize()]


# --- choosing cells ---------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,2}) ", re.MULTILINE)


def _opens_section(cell: NotebookNode) -> bool:
    return cell.cell_type == "markdown" and _HEADING.search(cell.source) is not None


def section_cells(nb: NotebookNode, heading: str) -> list[NotebookNode]:
    """The cells after the markdown cell that starts with `heading`, up to the next "#"/"##" heading."""
    cells, inside = [], False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith(heading):
            inside = True
            continue
        if inside and _opens_section(cell):
            break
        if inside:
            cells.append(cell)
    return cells


def guide_cells(nb: NotebookNode, name: str = "lesson") -> list[NotebookNode]:
    """The guide's own calls in a lesson (see docs/architecture.md for the rule)."""
    tagged = [c for c in nb.cells if c.cell_type == "code" and GUIDE_TAG in c.metadata.get("tags", [])]
    found = tagged or [
        c for c in section_cells(nb, GUIDE_HEADING) if c.cell_type == "code" and GUIDE_CALL in c.source
    ]
    if not found:
        raise table_error(
            TOOLS, "lesson-no-guide-call", DocsError, name=name, tag=GUIDE_TAG, heading=GUIDE_HEADING
        )
    return found


def setup_cells(nb: NotebookNode, name: str = "lesson") -> list[NotebookNode]:
    found = [c for c in section_cells(nb, SETUP_HEADING) if c.cell_type == "code"]
    if not found:
        raise table_error(TOOLS, "lesson-no-setup", DocsError, name=name, heading=SETUP_HEADING)
    return found


def provider_line(nb: NotebookNode) -> str:
    """What the lesson's banner says answered, e.g. "replay — replayed answers (recorded from local: ...)"."""
    for cell in setup_cells(nb):
        for output in cell.outputs:
            for line in output.get("data", {}).get("text/plain", "").splitlines():
                if line.startswith("Provider: "):
                    return str(line.removeprefix("Provider: ")).strip()
    raise table_error(TOOLS, "lesson-no-provider-line", DocsError)


# --- the page ---------------------------------------------------------------------------------------------


def _cell(cell: NotebookNode, lead: str) -> NotebookNode:
    copy: NotebookNode = nbformat.from_dict(
        json.loads(json.dumps(cell))
    )  # a deep copy the preprocessors may change
    copy.metadata = nbformat.from_dict({"akash_nb_docs": {"lead": lead}})
    return copy


def _front_matter() -> str:
    # JSON values are YAML, and written this way the block looks like the seed's.
    return "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in FRONT_MATTER.items())


def answered_by(nb: NotebookNode) -> str:
    """The label over a section's outputs: which provider and model printed them, and that AkashML's
    answers will differ."""
    return (
        f"Printed when the tested lesson ran, by {provider_line(nb)}; AkashML's models answer "
        f"differently. {SIMILAR}"
    )


def guide_notebook(folder: Path) -> NotebookNode:
    """The page as a notebook: frame text from the tables above, code and outputs from the lessons."""
    md = nbformat.v4.new_markdown_cell
    lessons = {path.stem: read_lesson(path) for path in notebooks.lessons(folder)}
    missing = [s.lesson for s in (*SECTIONS, *GOING_FURTHER) if s.lesson not in lessons]
    if missing:
        raise table_error(
            TOOLS, "page-lessons-missing", DocsError, missing=", ".join(missing), folder=folder.name
        )

    cells = [md(INTRO), md(INTRODUCTION), md(PYTHON_EXAMPLES), nbformat.v4.new_code_cell(PREAMBLE)]
    for number, section in enumerate((*SECTIONS, *GOING_FURTHER)):
        if number == len(SECTIONS):
            cells.append(md(GOING_FURTHER_INTRO))
        nb = lessons[section.lesson]
        cells.append(md(f"{section.heading}\n\n{section.lead}"))
        label = answered_by(nb)
        cells += [_cell(c, label) for c in guide_cells(nb, section.lesson)]
    cells.append(md(LESSONS + "\n\n" + "\n".join(f"- [{stem}]({stem}.html)" for stem in lessons)))
    guide: NotebookNode = nbformat.v4.new_notebook(cells=cells)
    guide.metadata = nbformat.from_dict({"language_info": {"name": "python"}})
    return guide


def fence(text: str, info: str = "") -> str:
    """A fenced block that survives fences inside it (a model's answer often holds ```python)."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text.rstrip()}\n{ticks}"


def printed(cell: NotebookNode) -> str:
    """What a cell showed, as text: its stdout, then the plain text of its results and displays."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", "") + "\n")
    return "".join(parts).strip("\n")


GUIDE_TEMPLATE = """\
{%- extends 'base/display_priority.j2' -%}
{%- block header -%}
---
{{ resources.front_matter }}---

{% endblock header -%}
{%- block markdowncell -%}
{{ cell.source }}

{% endblock markdowncell -%}
{%- block input -%}
{{ cell.source | fence('python') }}

{% endblock input -%}
{%- block output_group -%}
{%- if cell | printed -%}
{{ cell.metadata.akash_nb_docs.lead }}

{{ cell | printed | fence('text') }}

{% endif -%}
{%- endblock output_group -%}
"""


def page(folder: Path) -> str:
    """The guide page's Markdown, rendered by nbconvert from `guide_notebook(folder)`."""
    exporter = MarkdownExporter(
        template_file="guide.md.j2",
        extra_loaders=[DictLoader({"guide.md.j2": GUIDE_TEMPLATE})],
        filters={"fence": fence, "printed": printed},
        preprocessors=_preprocessors(),
    )
    body, _ = exporter.from_notebook_node(guide_notebook(folder), resources={"front_matter": _front_matter()})
    return _one_blank_line(body).rstrip() + "\n"


def _one_blank_line(text: str) -> str:
    """Runs of blank lines made one, outside fenced blocks: code keeps its own blank lines (PEP 8's two
    before a class)."""
    lines: list[str] = []
    fence_open = ""
    for line in text.split("\n"):
        ticks = re.match(r"`{3,}", line)
        if ticks and (not fence_open or (ticks.group() == fence_open and line.strip() == fence_open)):
            fence_open = "" if fence_open else ticks.group()
        elif not fence_open and not line.strip() and lines and not lines[-1].strip():
            continue
        lines.append(line)
    return "\n".join(lines)


def lesson_html(path: Path) -> str:
    exporter = HTMLExporter(template_name="lab", preprocessors=_preprocessors())
    body, _ = exporter.from_notebook_node(read_lesson(path))
    return body


def export(folder: Path, out: Path) -> list[Path]:
    """Write the page and every lesson's HTML into `out`; returns the files written."""
    ensure_folder(out, "The output folder", "give --out a folder you can write", writable=True)
    written = [out / PAGE_NAME]
    written[0].write_text(page(folder), encoding="utf-8")
    for path in notebooks.lessons(folder):
        target = out / f"{path.stem}.html"
        target.write_text(lesson_html(path), encoding="utf-8")
        written.append(target)
    return written
