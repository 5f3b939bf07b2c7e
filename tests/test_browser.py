"""Proven in a real browser: every lesson run in JupyterLab, in headless Chromium, by Playwright.

For each lesson: Run All Cells, wait until every code cell has an execution count and the kernel is idle,
then check what a learner sees: no traceback, the provider banner, the panel drawn as a real widget (a
slider and a dropdown, not its text fallback), and an answer in it naming the model and provider.
Lesson 01 also drives the panel by hand, opens the wire view (request, response, curl) and a hint; lesson 02
drives the chat box. A screenshot of each lesson goes to build/screenshots/.

The lab runs on replay when recordings/ holds recordings (else on the embedded model); set
AKASH_NB_PROVIDER=local or replay to choose. Under replay only recorded requests answer, so besides the
lessons' own recordings this test has three: lesson 01's panel run at temperature 0, and the two turns it
types into lesson 02's chat box (which follow the lesson's recorded "Hello! Who are you?"). After
re-recording lesson 01 or 02, record them again; the replay server forwards what is missing to the
embedded model and writes it:

    AKASH_NB_PROVIDER=replay AKASH_NB_REPLAY_MODE=record AKASH_NB_RECORD_UPSTREAM=local \\
        .venv/bin/python -m pytest -m browser tests/test_browser.py
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import (
    CHROMIUM_ARGS,
    WIDGETS_EXTENSION,
    Lab,
    chromium,
    lab_environment,
    labextensions,
    running_lab,
    wait_for,
)
from project import RECORDINGS, ROOT

NOTEBOOKS = ROOT / "notebooks"
SCREENSHOTS = ROOT / "build" / "screenshots"
LESSONS = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
MODEL = "SmolLM2-135M-Instruct"

# Read at import, before conftest's clean_env empties the provider settings for each test.
_CHOSEN = os.environ.get("AKASH_NB_PROVIDER", "")
PROVIDER = (
    _CHOSEN if _CHOSEN in ("replay", "local") else ("replay" if any(RECORDINGS.glob("*.json")) else "local")
)
PASSED = {
    name: os.environ[name]
    for name in ("AKASH_NB_REPLAY_MODE", "AKASH_NB_RECORD_UPSTREAM")
    if PROVIDER == "replay" and os.environ.get(name)
}
# "replay": a request nobody recorded gets the no-recording sentence. "record": it would be recorded
# instead, so the steps that send one on purpose are left out. "local": the live embedded model.
MODE = PASSED.get("AKASH_NB_REPLAY_MODE", "replay") if PROVIDER == "replay" else "local"
# On the live model, or recording from it, the lab's kernels start the embedded model: live as well.
pytestmark = [pytest.mark.browser, *([pytest.mark.live] if MODE != "replay" else [])]

KERNEL_START_SECONDS = 60
RUN_ALL_SECONDS = 240 if PROVIDER == "replay" else 420  # the live model writes a few hundred tokens a lesson
ANSWER_SECONDS = 120
UI_SECONDS = 15_000  # milliseconds, for Playwright's own waits on the page

# The notebook's kernel started and idle (a fresh kernel is 'starting', then 'idle').
JS_KERNEL_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(panel && panel.sessionContext && panel.sessionContext.session &&
            panel.sessionContext.session.kernel && panel.sessionContext.kernelDisplayStatus === 'idle');
}"""
# Clear the committed outputs (so no execution count is left over from them), then the Run menu's
# "Run All Cells" through the lab's command registry. Its promise settles when the last cell has run, with
# false when a cell failed (which stops Run All); the outcome is kept in the page.
JS_RUN_ALL = """async () => {
  const commands = window.jupyterapp.commands;
  await commands.execute('notebook:clear-all-cell-outputs');
  window.akashRunAll = 'running';
  commands.execute('notebook:run-all-cells').then(
    ok => { window.akashRunAll = ok ? 'ok' : 'failed'; },
    error => { window.akashRunAll = 'error: ' + error; });
}"""
# The kernel idle and every code cell with an execution count in its prompt.
JS_ALL_EXECUTED = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (panel.sessionContext.kernelDisplayStatus !== 'idle') return false;
  const prompts = [...panel.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab serving a copy of the lessons, in private folders; stopped whatever happens."""
    home = tmp_path_factory.mktemp("browser-lab")
    root = home / "notebooks"
    shutil.copytree(NOTEBOOKS, root)
    env = lab_environment(home / "private", PROVIDER, RECORDINGS, PASSED)
    listed = re.sub(r"\x1b\[[0-9;]*m", "", labextensions(env))  # without its colours
    assert re.search(rf"{re.escape(WIDGETS_EXTENSION)} v\S+ enabled OK", listed), (
        f"JupyterLab does not list the ipywidgets extension {WIDGETS_EXTENSION} as enabled and OK, so "
        f"widgets would show as text: install ipywidgets (jupyterlab_widgets) in this interpreter.\n{listed}"
    )
    try:
        with running_lab(root, env, home / "lab.log") as started:
            yield started
            started.shutdown_kernels()
    finally:
        # The embedded model server (local, or record mode's upstream) outlives kernels by design.
        subprocess.run(
            [sys.executable, "-c", "from akash_nb._engine import embedded; embedded.stop()"],
            env=env,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        # launch() gives each browser a fresh temporary profile (user-data-dir) and deletes it on close.
        launched = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(UI_SECONDS)
    opened = context.new_page()
    opened.console_errors = []
    opened.on("pageerror", lambda error: opened.console_errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()


# --- what a lesson looks like after Run All ------------------------------------------------------------


def run_lesson(page, lab: Lab, name: str) -> None:
    """Open `name` alone, wait for its kernel, Run All Cells, and wait until every cell has run."""
    page.goto(lab.notebook_url(name, workspace=Path(name).stem))
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
    page.wait_for_function(JS_KERNEL_IDLE, timeout=KERNEL_START_SECONDS * 1000)
    page.evaluate(JS_RUN_ALL)
    page.wait_for_function(
        "() => window.akashRunAll !== 'running'", timeout=RUN_ALL_SECONDS * 1000, polling=200
    )
    outcome = page.evaluate("window.akashRunAll")
    assert outcome == "ok", f"{name}: Run All stopped ({outcome}):\n" + "\n".join(error_texts(page))
    page.wait_for_function(JS_ALL_EXECUTED, timeout=KERNEL_START_SECONDS * 1000, polling=200)


def outputs(page, mime: str | None = None) -> list[str]:
    selector = ".jp-OutputArea-output" + (f'[data-mime-type="{mime}"]' if mime else "")
    return page.locator(selector).all_inner_texts()


def error_texts(page) -> list[str]:
    """Tracebacks, error outputs and error sentences shown in output areas."""
    found = [
        t
        for t in outputs(page, "application/vnd.jupyter.stderr")
        if "Traceback" in t or re.search(r"^\w*(Error|Exception)\b", t, re.M)
    ]
    found += [t for t in outputs(page) if t.startswith("Error:")]
    return found


def panels(page):
    """The lesson's widget panels: a VBox holding a model dropdown and a temperature slider."""
    return (
        page.locator(".jp-OutputArea-output .widget-vbox")
        .filter(has=page.locator(".widget-slider"))
        .filter(has=page.locator(".widget-dropdown select"))
    )


def assert_lesson_rendered(page, name: str) -> None:
    assert not error_texts(page), f"{name} shows errors:\n" + "\n".join(error_texts(page))
    banner = f"Provider: {PROVIDER}"
    assert any(text.startswith(banner) for text in outputs(page, "text/html")), (
        f"{name}: no output starts with {banner!r}"
    )

    fallbacks = [t for t in outputs(page, "text/plain") if t.startswith(("Panel · model", "ChatBox · model"))]
    assert not fallbacks, f"{name}: a widget was shown as its text fallback: {fallbacks[0][:200]}"
    panel = panels(page).first
    panel.wait_for()  # widget views render after their cell has run
    assert panel.locator(".widget-slider .noUi-handle").count() == 1, "the temperature slider is missing"
    assert MODEL in panel.locator(".widget-dropdown select option").all_inner_texts()
    # The lesson's panel.run() cell answered into the panel (the update may trail the cell's reply).
    wait_for(
        lambda: usage_text(panel).startswith(f"{MODEL} via {PROVIDER}"),
        10,
        f"the panel's answer from {MODEL} via {PROVIDER}",
    )
    assert panel.locator(".akash-nb-answer").inner_text().strip(), f"{name}: the panel shows no answer"
    show_the_code(panel, name)
    body = page.locator(".jp-NotebookPanel").inner_text()
    for broken in ("Error displaying widget", "Loading widget...", "model not found"):
        assert broken not in body, f"{name}: {broken!r} where a widget should be"
    assert not page.console_errors, f"{name}: JavaScript errors in the page: {page.console_errors}"


def show_the_code(panel, name: str) -> None:
    """The panel says why its model list has one entry, and Show code shows the create() call it sends."""
    assert "serves one model, so the list has one entry" in panel.inner_text(), f"{name}: no models line"
    assert not panel.locator("pre.akash-nb-code").count(), f"{name}: the code shows before it is asked for"
    panel.locator("button", has_text="Show code").click()
    code = panel.locator("pre.akash-nb-code")
    code.wait_for()
    text = code.inner_text()
    assert "client.chat.completions.create(" in text and f"model='{MODEL}'" in text, text
    panel.locator("button", has_text="Hide code").click()
    code.wait_for(state="detached")


def usage_text(panel) -> str:
    """The panel's last line: who answered, via which provider, why it stopped, timings."""
    return panel.locator(".widget-html-content").last.inner_text()


def answer_text(panel) -> str:
    return panel.locator(".widget-html-content").nth(-2).inner_text()


def screenshot(page, name: str, target) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if target is not None and target.count():
        target.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}.png"))


# --- the tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LESSONS, ids=lambda n: Path(n).stem)
def test_lesson_runs_in_jupyterlab(page, lab, name):
    try:
        run_lesson(page, lab, name)
        assert_lesson_rendered(page, name)
        if name.startswith("01-"):
            open_the_wire(page)
            open_a_hint(page)
            drive_panel(page)
        if name.startswith("02-"):
            drive_chat_box(page)
    finally:
        from playwright.sync_api import Error as PlaywrightError

        with contextlib.suppress(PlaywrightError):  # a failed screenshot must not hide the failure
            screenshot(page, name, focus(page, name))
        lab.shutdown_kernels()  # one lesson's kernel at a time: the machine may have two cores


def focus(page, name: str):
    """What the screenshot centres on: the chat box in lesson 02, the panel elsewhere."""
    return chat_boxes(page).locator(".widget-html-content").last if name.startswith("02-") else panels(page)


def watch(element) -> None:
    """Record every text `element` shows from now on (see `seen`): a MutationObserver in the page catches
    states too brief to poll, such as "Sending…" under replay."""
    element.evaluate("""e => {
      if (!e.akashSeen) {
        new MutationObserver(() => e.akashSeen.push(e.innerText.trim())).observe(
          e, {childList: true, subtree: true, characterData: true});
      }
      e.akashSeen = [];
    }""")


def seen(element) -> list[str]:
    return element.evaluate("e => e.akashSeen")


def click_run(panel, what: str) -> None:
    """Click the panel's Run and wait until that run has finished.

    A run empties the usage line first and writes it again last (also after a failed request), so: the
    usage line was seen empty since the click, and is not empty now.
    """
    usage = panel.locator(".widget-html-content").last
    watch(usage)
    panel.locator("button", has_text="Run").click()
    wait_for(lambda: "" in seen(usage) and usage.inner_text().strip(), ANSWER_SECONDS, what)


def drive_panel(page) -> None:
    """Lesson 01's panel by hand: slider (keyboard, then its readout), dropdown, Run.

    A. The temperature goes one step up with the keyboard (0.7 -> 0.8) and Run is clicked. Nobody
       recorded that request, so under replay the answer area must show the no-recording sentence, and the
       usage line say no answer came; on the live model, a new answer. (Left out in record mode, which
       would record it.)
    B. 0 is typed into the slider's readout, the served model chosen in the dropdown, and Run clicked
       twice. At temperature 0 the request is deterministic and one recording answers every repeat (see
       _replay/cassettes.py), so under replay both runs must show the same real answer; each run's usage line
       names the model and the provider.
    """
    panel = panels(page).first
    readout = panel.locator(".widget-slider .widget-readout")
    handle = panel.locator(".widget-slider .noUi-handle")
    assert readout.inner_text() == "0.7"

    handle.focus()
    page.keyboard.press("ArrowRight")
    wait_for(lambda: readout.inner_text() == "0.8", 5, "the slider readout to show 0.8")
    if MODE == "replay":
        click_run(panel, "the no-recording sentence for temperature 0.8")
        assert answer_text(panel).startswith("Error: No recording for"), answer_text(panel)
        assert "make record" in answer_text(panel)
        assert usage_text(panel).startswith("no answer via replay"), usage_text(panel)
    elif MODE == "local":
        click_run(panel, "an answer at temperature 0.8")
        assert usage_text(panel).startswith(f"{MODEL} via local"), usage_text(panel)
        assert answer_text(panel).strip() and not answer_text(panel).startswith("Error")

    readout.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("0")
    page.keyboard.press("Enter")
    wait_for(lambda: handle.get_attribute("aria-valuenow") in ("0", "0.0"), 5, "the slider to move to 0")
    assert readout.inner_text() == "0.0"
    panel.locator(".widget-dropdown select").select_option(MODEL)
    answers = []
    for attempt in (1, 2):
        click_run(panel, f"answer {attempt} at temperature 0")
        assert not answer_text(panel).startswith("Error"), (
            f"{answer_text(panel)}\nRecord it again: see this file's docstring."
        )
        assert answer_text(panel).strip(), "the answer area is empty"
        assert usage_text(panel).startswith(f"{MODEL} via {PROVIDER} · finish_reason="), usage_text(panel)
        answers.append(answer_text(panel))
    if PROVIDER == "replay":
        assert answers[0] == answers[1], "one recording answers every repeat at temperature 0"


def open_the_wire(page) -> None:
    """Lesson 01's show_http: the request that went out is shown open; the response and the curl command
    open on a click; the key is masked everywhere."""
    wire = page.locator(".jp-OutputArea-output details.akash-nb-wire")
    assert wire.count() == 3, "show_http shows the request, the response and the curl command"
    request, response, curl = wire.nth(0), wire.nth(1), wire.nth(2)
    assert request.locator("pre").is_visible()
    assert "POST http" in request.inner_text() and '"messages"' in request.inner_text()
    assert "Authorization: Bearer ****" in request.inner_text()
    for folded, expected in ((response, '"choices"'), (curl, "curl http")):
        assert not folded.locator("pre").is_visible(), "folded until clicked"
        folded.locator("summary").click()
        wait_for(lambda f=folded: f.locator("pre").is_visible(), 5, "the wire section to open")
        assert expected in folded.locator("pre").inner_text()
    assert "$API_KEY" in curl.locator("pre").inner_text()


def open_a_hint(page) -> None:
    """A hint under "Your turn" stays folded until the learner asks for it."""
    hint = page.locator(".jp-RenderedMarkdown details", has=page.locator("summary", has_text="Hint 1"))
    assert hint.count() == 1, "lesson 01 has one Hint 1"
    body = hint.locator("p").first
    assert not body.is_visible(), "the hint is folded"
    hint.locator("summary").click()
    wait_for(body.is_visible, 5, "the hint to open")
    assert "max_tokens=20" in body.inner_text()
    solution = page.locator(".jp-RenderedMarkdown details", has=page.locator("summary", has_text="Solution"))
    assert not solution.locator("pre").first.is_visible(), "the solution stays folded"


def chat_boxes(page):
    """The chat box: a VBox with a text box and a Send button."""
    return page.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator("button", has_text="Send")
    )


# Typed into lesson 02's chat box after the lesson's own "Hello! Who are you?" (recorded for replay).
TURNS = ("What can you help me with?", "Give me one tip for learning Python.")


def send(box, message: str) -> str:
    """Type `message` into the chat box, click Send, wait for the outcome; return the status line.

    The status line says "Sending…" and then who answered, or why nobody did.
    """
    status = box.locator(".widget-html-content").last
    watch(status)
    box.locator("textarea").fill(message)
    box.locator("button", has_text="Send").click()
    wait_for(
        lambda: (
            any(t.startswith("Sending") for t in seen(status))
            and not status.inner_text().startswith("Sending")
        ),
        ANSWER_SECONDS,
        f"an answer to {message!r}",
    )
    return status.inner_text()


def drive_chat_box(page) -> None:
    """Lesson 02's chat box by hand: two typed turns, each answered into the transcript.

    Under replay, first a message nobody can have recorded: the status line must say so in one sentence,
    the transcript stay as it was and the message stay in the box to send again.
    """
    assert chat_boxes(page).count() == 1, "lesson 02's chat box did not render as a widget"
    box = chat_boxes(page).first
    transcript = box.locator(".widget-html-content").first
    text = box.locator("textarea")
    assert "Hello! Who are you?" in transcript.inner_text(), "the lesson's own turn is not in the transcript"
    assert f"{MODEL} via {PROVIDER}" in box.locator(".widget-html-content").last.inner_text()

    if MODE == "replay":
        before = transcript.inner_text()
        unrecorded = f"Nobody recorded this message {uuid.uuid4().hex}"
        status = send(box, unrecorded)
        assert status.startswith("No recording for"), status
        assert transcript.inner_text() == before, "a failed turn must leave the transcript unchanged"
        assert text.input_value() == unrecorded, "a failed message must stay in the box to send again"

    for turn in TURNS:
        status = send(box, turn)
        assert not status.startswith("No recording"), (
            f"{status}\nRecord lesson 02's typed turns again: see this file's docstring."
        )
        assert status.startswith(f"{MODEL} via {PROVIDER} · finish_reason="), status
        assert text.input_value() == "", "a sent message leaves the box"
    # The transcript ends with each typed turn, each followed by its own reply.
    messages = transcript.evaluate("""e => [...e.children].map(m => [
        m.querySelector('b').innerText, m.querySelector('.akash-nb-answer').innerText.trim()])""")
    assert [role for role, _ in messages[-4:]] == ["user", "assistant"] * 2, messages
    assert [content for _, content in messages[-4::2]] == list(TURNS), messages
    assert all(content for _, content in messages[-3::2]), f"an empty reply: {messages}"
