"""Gates on the committed lessons: the template, clean metadata, no errors, no secrets, no local paths."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from helpers import LESSONS, exercise_problems, guide_cells, markdown, template_problems
from project import RECORDINGS, ROOT

from akash_nb._core.providers import PROVIDERS
from akash_nb._tools.docs import SECTIONS
from akash_nb._tools.notebooks import normalize

KEY_SHAPE = re.compile(r"\b(sk-[A-Za-z0-9_-]{20,}|akml-[A-Za-z0-9_-]{16,})")
LOCAL_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|/Users/|[A-Z]:\\\\)")


ZERO_TIME = re.compile(r"\b0\.00 s\b")


def test_every_section_of_the_guide_has_its_lesson_and_every_lesson_is_found_by_its_name():
    """Lessons are found in notebooks/ by name (NN-name.ipynb), not from a list: a new lesson is tested
    as soon as it is there."""
    names = [p.stem for p in LESSONS]
    missing = [s.lesson for s in SECTIONS if s.lesson not in names]
    assert not missing, f"the guide's sections need the lessons {missing} in notebooks/"
    badly_named = [n for n in names if not re.fullmatch(r"\d\d-[a-z0-9-]+", n)]
    assert not badly_named, f"lessons are named NN-lowercase-words.ipynb: {badly_named}"


@pytest.fixture(params=LESSONS, ids=lambda p: p.stem)
def lesson(request) -> tuple[Path, nbformat.NotebookNode]:
    return request.param, nbformat.read(request.param, as_version=4)


def test_follows_the_lesson_template(lesson):
    _, nb = lesson
    assert template_problems(nb) == []


def test_has_two_hints_and_a_solution_run_all_does_not_execute(lesson):
    _, nb = lesson
    assert exercise_problems(nb) == []


def test_the_guide_cells_are_plain_openai_code(lesson):
    _, nb = lesson
    for cell in guide_cells(nb):
        assert "akash_nb" not in cell.source, f"a guide cell uses akash_nb:\n{cell.source}"


def outputs_text(cell) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        texts.append("".join(text) if isinstance(text, list) else text)
    return texts


def test_no_time_of_zero_without_saying_it_is_replays(lesson):
    """Under replay the replay server answers in no time: a line showing 0.00 s must say `replay`."""
    path, nb = lesson
    for cell in nb.cells:
        for text in outputs_text(cell):
            for line in text.splitlines():
                assert not ZERO_TIME.search(line) or "replay" in line, f"{path.name}: {line!r}"


def test_no_widget_repr_is_committed(lesson):
    path, nb = lesson
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            plain = "".join(output.get("data", {}).get("text/plain", ""))
            assert not re.match(r"^\w+\(value=", plain), f"{path.name} commits a widget's repr: {plain[:80]}"


def test_the_provider_table_shows_whole_descriptions():
    (table,) = [t for c in lesson_named("00-setup").cells for t in outputs_text(c) if "what it is" in t]
    for provider in PROVIDERS.values():
        assert provider.note in table, f"cut off: {provider.note}"


def create_calls(source: str, helpers: set[str]) -> int:
    """How many requests a cell may send: each create( or helper call, twice when it is in a loop (after a
    `for` line, or in a comprehension)."""
    calls, in_loop = 0, False
    for line in source.splitlines():
        in_loop = in_loop or line.lstrip().startswith("for ")
        found = line.count(".create(") + sum(line.count(f"{h}(") for h in helpers)
        calls += found * (2 if in_loop or " for " in line else 1)
    return calls


def test_a_cost_note_comes_before_any_cell_that_calls_the_provider_more_than_once(lesson):
    path, nb = lesson
    helpers: set[str] = set()
    previous = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            previous = cell.source
            continue
        defined = re.findall(r"^def (\w+)\(", cell.source, re.M)
        if defined and ".create(" in cell.source:
            helpers.update(defined)
            continue
        if create_calls(cell.source, helpers) > 1:
            assert "Cost" in previous, f"{path.name}: no cost note before:\n{cell.source[:200]}"


def lesson_named(stem: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)


def test_setup_gives_the_steps_to_an_akashml_key():
    text = markdown(lesson_named("00-setup"))
    for step in ("Create an account", "credits", "Settings → API Keys", "AKASHML_API_KEY=akml-"):
        assert step in text


def test_the_claims_are_honest():
    code_generation = markdown(lesson_named("03-code-generation"))
    assert "safely" not in code_generation.lower()
    assert "not a sandbox" in code_generation
    parameters = markdown(lesson_named("05-parameters"))
    assert "the same request gets the same answer" not in parameters
    assert "do not promise" in parameters


def test_both_world_cup_answers_are_fact_checked():
    nb = lesson_named("02-conversation")
    checks = [
        line
        for c in nb.cells
        for text in outputs_text(c)
        for line in text.splitlines()
        if line.startswith("Fact check: Argentina won")
    ]
    assert len(checks) == 2, checks


def test_every_guide_lesson_shows_the_guides_printed_output_beside_the_answer():
    for section in SECTIONS:
        texts = [t for c in lesson_named(section.lesson).cells for t in outputs_text(c)]
        assert any(t.startswith("The guide printed (") and "You got (" in t for t in texts), section.lesson


def test_the_wire_is_shown_with_the_key_masked():
    texts = [t for c in lesson_named("01-basic-completion").cells for t in outputs_text(c)]
    (wire,) = [t for t in texts if t.startswith("Request:\nPOST ")]
    assert "Response:\nHTTP 200 (application/json)" in wire and "curl " in wire
    assert "Authorization: Bearer ****" in wire and '"model": "SmolLM2-135M-Instruct"' in wire


def test_is_committed_normalized(lesson):
    path, _ = lesson
    expected = nbformat.writes(normalize(nbformat.read(path, as_version=4)))
    assert path.read_text() == expected + ("\n" if not expected.endswith("\n") else ""), (
        f"{path.name} has machine-specific metadata: run `make notebooks`"
    )


def test_is_committed_with_outputs_and_no_errors(lesson):
    path, nb = lesson
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), (
        f"{path.name} has unexecuted cells: run `make notebooks`"
    )
    for cell in code_cells:
        for output in cell.outputs:
            assert output.output_type != "error", f"{path.name}: {output.get('ename')} committed"
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"{path.name} commits stderr: {output.text[:200]}"
            )


def test_no_local_paths_and_no_input(lesson):
    path, _ = lesson
    text = path.read_text()
    assert not LOCAL_PATH.search(text), f"{path.name} holds a local path: {LOCAL_PATH.search(text)}"
    assert "input(" not in text


def test_no_key_shaped_string_in_any_tracked_file():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    leaks = []
    for name in files:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        leaks += [f"{name}: {m.group(0)[:8]}..." for m in KEY_SHAPE.finditer(text)]
    assert leaks == []


def test_recordings_are_small_readable_json():
    folder = RECORDINGS
    files = list(folder.glob("*.json"))
    assert files, "no recordings: run `make record`"
    for path in files:
        assert path.stat().st_size < 64_000, f"{path.name} is large; is it recording more than a lesson?"
        data = json.loads(path.read_text())
        assert "authorization" not in json.dumps(data).lower()


def first_cell(nb, needle: str) -> int:
    """The index of the first code cell whose source holds `needle`."""
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and needle in c.source]
    assert found, f"no code cell holds {needle!r}"
    return found[0]


def printed(nb, needle: str) -> str:
    """What the first code cell holding `needle` printed."""
    return "".join(outputs_text(nb.cells[first_cell(nb, needle)]))


def test_the_conversation_lesson_writes_the_history_the_failed_turn_and_the_trim_before_the_helper():
    nb = lesson_named("02-conversation")
    helper = first_cell(nb, "akash_nb.Conversation(")
    for skill in ("def ask(", "except openai.BadRequestError", "def trim(", "del kept[1:3]"):
        assert first_cell(nb, skill) < helper, skill
    failed = printed(nb, "ask(history, too_long")
    assert "HTTP 400" in failed
    before, after = re.search(r"messages before: (\d+) after: (\d+) last role: assistant", failed).groups()
    assert before == after, failed
    assert "last role: user" in printed(nb, "guide_way.append(")
    assert "the next turn fails too: HTTP 400" in printed(nb, "Who scored in the final?")


@pytest.mark.parametrize("needle", ["trim(history + question", "chat.trimmed(total - 1)"])
def test_each_trim_demo_really_drops_turns(needle):
    text = printed(lesson_named("02-conversation"), needle)
    total = int(re.search(r"all messages: (\d+)", text).group(1))
    kept = int(re.search(r"within \d+ tokens: (\d+)", text).group(1))
    assert kept < total, text


def test_the_conversation_lesson_does_not_contradict_the_guide():
    text = markdown(lesson_named("02-conversation"))
    assert "never prints" not in text


@pytest.mark.parametrize("stem", ["02-conversation", "03-code-generation"])
def test_an_answer_printed_again_is_remarked_on(stem):
    """A new answer (a cell that asks the model) printed again word for word is followed by a note that says
    it is the same (extracted code, which repeats its answer by design, asks nothing)."""
    nb = lesson_named(stem)
    seen: list[str] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream").strip()
        asks = any(call in cell.source for call in (".create(", ".send(", "ask("))
        if asks and len(text) > 40 and any(text in earlier for earlier in seen):
            note = next(c.source for c in nb.cells[i + 1 :] if c.cell_type == "markdown")
            assert "same" in note, f"{stem} cell {i} repeats an earlier answer unremarked:\n{text[:200]}"
        seen.append(text)


def test_the_code_lesson_writes_the_regex_and_the_isolated_run_before_the_helpers():
    nb = lesson_named("03-code-generation")
    helper = first_cell(nb, "akash_nb.generated_code.extract_code(")
    assert first_cell(nb, 're.compile(r"```') < helper
    run = first_cell(nb, 'subprocess.run([sys.executable, "-I"')
    assert run < helper and "timeout=timeout" in nb.cells[run].source
    demo = printed(nb, "wrong = run_isolated(")
    assert "wrong function, exit code: 1" in demo and "TimeoutExpired" in demo


@pytest.mark.parametrize(
    ("stem", "check"), [("02-conversation", "check_third_turn"), ("03-code-generation", "check_palindrome")]
)
def test_the_exercise_check_is_shown_before_it_runs(stem, check):
    nb = lesson_named(stem)
    shown = first_cell(nb, f"inspect.getsource(akash_nb.exercises.{check})")
    assert printed(nb, f"inspect.getsource(akash_nb.exercises.{check})").startswith(f"def {check}(")
    assert shown < first_cell(nb, f"akash_nb.exercises.{check}(")


# A footer ("... via replay · ... 0.07 s") or the doctor's row for replay ("replay  none needed ... 0.13 s").
REPLAYED_TIME = re.compile(r"(via replay\b|^replay )[^\n]*\b\d+\.\d\d s\b", re.MULTILINE)


@pytest.mark.parametrize(
    "path",
    LESSONS,
    ids=lambda p: p.stem,
)
def test_a_replayed_answer_shows_no_time_as_if_measured(path):
    """Replay answers at once: '0.01 s' for 30 tokens whose JSON says predicted_ms 380 is not a time."""
    nb = nbformat.read(path, as_version=4)
    shown = [t for c in nb.cells if c.cell_type == "code" for t in outputs_text(c) if REPLAYED_TIME.search(t)]
    assert not shown, f"{path.name} shows replay times as measured: {shown[0][:200]}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_no_lesson_links_to_itself(path):
    nb = nbformat.read(path, as_version=4)
    assert f"]({path.name})" not in markdown(nb), f"{path.name} links to itself"


@pytest.mark.live
def test_lesson_05s_sampler_defaults_are_the_embedded_servers_own(local_env):
    """Lesson 05 explains temperature by llama.cpp's sampler defaults (its /props, which replay cannot
    reach): they must be what the embedded engine really uses."""
    import httpx

    from akash_nb._engine import embedded

    (cell,) = [c for c in lesson_named("05-parameters").cells if "llama_cpp_defaults = {" in c.source]
    shown: dict = {}
    exec(cell.source.split("# From:")[0], shown)
    server = embedded.ensure_server()
    props = httpx.get(
        server.base_url.removesuffix("/v1") + "/props",
        headers={"Authorization": f"Bearer {server.key.reveal()}"},
        timeout=30,
    ).json()["default_generation_settings"]["params"]
    for name, value in shown["llama_cpp_defaults"].items():
        assert props[name] == pytest.approx(value) if isinstance(value, float) else props[name] == value, name
