"""Properties over servers, not only over inputs (issue 23, rule 7): every public consumer, against a loopback
server whose answer Hypothesis draws (tests/drawn_server.py), gives text or an AkashNBError sentence.

For every drawn reply, and a client made by `akash_nb.client(...)` or, where the consumer takes one, a plain
`openai.OpenAI(...)`:
- the consumer returns, or raises an AkashNBError; no other exception type escapes it. The learner's own
  `client.chat.completions.create(...)` before it may raise what the SDK raises, but only what the error
  display turns into one sentence (`error_display.is_ours`), and that sentence obeys the rules below;
- the configured key (by value, and as a proxy's "...last4") is nowhere in what reaches the learner: the
  returned text, the exception's str and repr, stdout and stderr, what `render.display` was handed, a
  widget's HTML and repr;
- no line of it is longer than MAX_LINE characters, holds a control character or escape sequence the
  server sent, or starts with a line the server forged (a newline in an id or a message);
- the other origin a redirect points to never received the Authorization header.

CI runs PER_CONSUMER (50) examples a property, derandomized; HYPOTHESIS_PROFILE=explore runs the profile's
own number (1000) of random ones.
"""

from __future__ import annotations

import contextlib
import io
import os
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from drawn_server import (
    FORGED,
    KEY,
    MODEL,
    TAIL,
    DrawnServer,
    Reply,
    chat_replies,
    models_or_errors,
    stream_replies,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

import akash_nb
from akash_nb import _error_display, _guide, _render, _streaming, doctor, exercises
from akash_nb._conversation import Conversation
from akash_nb._core import masking
from akash_nb._core.exceptions import AkashNBError
from akash_nb._engine import join
from akash_nb._widgets import ChatBox, Panel

pytestmark = pytest.mark.faults

# The profile's own count under explore (>= 500), 50 in CI (whose profile's default is for cheaper tests).
PER_CONSUMER = 50 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings.default.max_examples
examples = settings(max_examples=PER_CONSUMER)
MAX_LINE = 1000  # a sentence quotes a few hundred characters of a server's text; a line of ours is shorter
USER = [{"role": "user", "content": "Hello"}]
TIMEOUT = 0.3  # below the drawn server's 1 s stall


@pytest.fixture(scope="module")
def server() -> Iterator[DrawnServer]:
    with DrawnServer(second=DrawnServer()) as running:
        yield running


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch):
    """What masking has learned is given back after the test (each example also starts with none)."""
    monkeypatch.setattr(masking, "_known", set(masking._known))


# --- what every example checks ------------------------------------------------------------------------------


class Seen:
    """Everything of one example that reaches the learner: `shown` (on screen: printed, displayed, a widget's
    HTML or repr, an exception's text) and `returned` (values handed back, which hold no key either)."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.returned: list[str] = []
        self.displayed: list[dict[str, Any]] = []

    def add(self, *texts: object) -> None:
        self.shown += [t if isinstance(t, str) else repr(t) for t in texts if t is not None]

    def got(self, *values: object) -> None:
        self.returned += [v if isinstance(v, str) else repr(v) for v in values if v is not None]

    def check(self, server: DrawnServer) -> None:
        for bundle in self.displayed:
            self.add(*bundle.values())
        for text in self.shown + self.returned:
            assert KEY not in text, f"the key reached the learner: {text[:300]!r}"
            assert TAIL not in text, f"the key's last four reached the learner: {text[:300]!r}"
        for text in self.shown:
            for line in text.split("\n"):
                assert len(line) <= MAX_LINE, f"a line of {len(line)} characters: {line[:200]!r}..."
                bad = [c for c in line if unicodedata.category(c) in ("Cc", "Cf") and c != "\t"]
                assert not bad, f"a server's control character {bad[0]!r} reached the screen: {line[:300]!r}"
                assert not line.lstrip().startswith(FORGED), f"a forged line of output: {text[:300]!r}"
        assert not server.second.authorized, "the key went to the other origin a redirect pointed to"


@contextlib.contextmanager
def watching(server: DrawnServer, **replies: Reply) -> Iterator[Seen]:
    """One example: the server's replies set, masking forgetting every key, stdout, stderr and
    render.display captured; afterwards, the checks above."""
    server.reset(**replies)
    seen = Seen()
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(masking, "_known", set())
        patch.setattr(_render, "display", lambda bundle, **_: seen.displayed.append(dict(bundle)))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield seen
    seen.add(out.getvalue(), err.getvalue())
    seen.check(server)


def consumer(seen: Seen, call: Callable[[], object]) -> object:
    """The consumer's rule: it returns, or raises an AkashNBError (whose text is seen); nothing else."""
    try:
        return call()
    except AkashNBError as error:
        seen.add(str(error), repr(error), error.sentence)
        return error
    except Exception as error:
        raise AssertionError(f"{type(error).__name__} escaped: {str(error)[:500]!r}") from error


def learners_call(seen: Seen, call: Callable[[], object]) -> object | None:
    """The lesson's own SDK call: it may raise, but only what the error display shows as one sentence,
    and that sentence is seen. None when it raised."""
    try:
        return call()
    except Exception as error:
        if not _error_display.is_ours(error):
            raise AssertionError(
                f"{type(error).__name__} escaped the SDK's call: {str(error)[:500]!r}"
            ) from error
        caught = error  # the lambda runs here, inside the except
        seen.add(consumer(seen, lambda: _render.error_sentence(caught).sentence))
        return None


def made(server: DrawnServer, plain: bool) -> openai.OpenAI:
    if plain:  # the guide's route: the two values from connection_values, then a plain client
        api_key, base_url = akash_nb.connection_values(base_url=server.url, api_key=KEY, show=False)
        return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=TIMEOUT, max_retries=0)
    return akash_nb.client(base_url=server.url, api_key=KEY, timeout=TIMEOUT, max_retries=0, show=False)


def in_notebook(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(_render, "in_ipython", lambda: True)


# --- one property a consumer --------------------------------------------------------------------------------


@examples
@given(reply=stream_replies, plain=st.booleans())
def test_collect_stream_gives_text_or_a_sentence(server, reply, plain):
    with watching(server, stream=reply) as seen:
        client = made(server, plain)
        stream = learners_call(
            seen, lambda: client.chat.completions.create(model=MODEL, messages=USER, stream=True)
        )
        if stream is not None:
            result = consumer(seen, lambda: _streaming.collect_stream(stream))
            if isinstance(result, _streaming.StreamResult):
                seen.got(result.text)
                seen.add(result.error and result.error.sentence, result.error and str(result.error))


@examples
@given(models=models_or_errors, reply=stream_replies)
def test_the_panel_gives_text_or_a_sentence(server, models, reply):
    with watching(server, models=models, stream=reply) as seen:
        client = made(server, plain=False)
        panel = consumer(seen, lambda: Panel(client, "Hello"))
        if isinstance(panel, Panel):
            result = consumer(seen, panel.run)
            seen.add(str(result), repr(panel), panel.answer.value, panel.usage.value, panel.models_line.value)
            seen.add(*(label for label, _ in panel.model.options))  # what the dropdown shows


@examples
@given(reply=stream_replies, plain=st.booleans())
def test_the_chatbox_gives_text_or_a_sentence(server, reply, plain):
    with watching(server, stream=reply) as seen:
        box = ChatBox(Conversation(made(server, plain), MODEL))
        seen.got(consumer(seen, lambda: box.send("Hello")))
        seen.add(repr(box), box.status.value, box.transcript.value, box.status_text)


@examples
@given(data=st.data(), stream=st.booleans(), plain=st.booleans())
def test_a_conversation_gives_text_or_a_sentence(server, data, stream, plain):
    reply = data.draw(stream_replies if stream else chat_replies, label="reply")
    with watching(server, **{"stream" if stream else "chat": reply}) as seen:
        conversation = Conversation(made(server, plain), MODEL)
        seen.got(consumer(seen, lambda: conversation.send("Hello", stream=stream)))
        seen.add(conversation.transcript(), conversation.markdown(), repr(conversation))
        if conversation.partial is not None:
            seen.got(conversation.partial.text)
            seen.add(conversation.partial.label)


@examples
@given(reply=chat_replies, plain=st.booleans(), notebook=st.booleans())
def test_show_answer_gives_text_or_a_sentence(server, reply, plain, notebook):
    with watching(server, chat=reply) as seen, pytest.MonkeyPatch.context() as patch:
        if notebook:
            in_notebook(patch)
        client = made(server, plain)
        response = learners_call(seen, lambda: client.chat.completions.create(model=MODEL, messages=USER))
        if response is not None:
            consumer(seen, lambda: _render.show_answer(response, None if plain else client))


@examples
@given(reply=chat_replies, plain=st.booleans(), name=st.sampled_from(sorted(_guide.EXAMPLES)))
def test_guide_vs_you_gives_text_or_a_sentence(server, reply, plain, name):
    with watching(server, chat=reply) as seen:
        client = made(server, plain)
        response = learners_call(seen, lambda: client.chat.completions.create(model=MODEL, messages=USER))
        if response is not None:
            shown = consumer(seen, lambda: _guide.guide_vs_you(name, response, None if plain else client))
            if isinstance(shown, _guide.GuideVsYou):
                seen.add(str(shown), *shown._repr_mimebundle_().values())


CHECKS: dict[str, Callable[[Any], exercises.Check]] = {
    "check_setup": lambda r: exercises.check_setup(r, MODEL, [MODEL]),
    "check_length_stop": exercises.check_length_stop,
    "check_third_turn": lambda r: exercises.check_third_turn(
        [*USER, {"role": "assistant", "content": "Hi"}] * 2 + USER, r
    ),
    "check_summary": lambda r: exercises.check_summary(r, _guide.GUIDE_TEXT),
    "check_repeatable": lambda r: exercises.check_repeatable(r, r.model_copy() if r is not None else r),
}


@examples
@given(reply=chat_replies, plain=st.booleans(), name=st.sampled_from(sorted(CHECKS)))
def test_the_exercise_checks_give_text_or_a_sentence(server, reply, plain, name):
    with watching(server, chat=reply) as seen:
        client = made(server, plain)
        response = learners_call(seen, lambda: client.chat.completions.create(model=MODEL, messages=USER))
        if response is not None:
            check = consumer(seen, lambda: CHECKS[name](response))
            if isinstance(check, exercises.Check):
                seen.add(str(check), *check._repr_mimebundle_().values())


@examples
@given(
    models=models_or_errors,
    plain=st.booleans(),
    requested=st.sampled_from([None, MODEL, "other-model"]),
    show=st.booleans(),
    notebook=st.booleans(),
)
def test_served_models_and_choose_model_give_text_or_a_sentence(
    server, models, plain, requested, show, notebook
):
    with watching(server, models=models) as seen, pytest.MonkeyPatch.context() as patch:
        if notebook:
            in_notebook(patch)
        client = made(server, plain)
        served = consumer(seen, lambda: akash_nb.served_models(client))
        seen.got(*(served if isinstance(served, list) else []))
        seen.got(consumer(seen, lambda: akash_nb.choose_model(client, requested, show=show)))


@examples
@given(models=models_or_errors)
@example(models=Reply(status=302, location="second"))  # rare among 50 drawn: the issue's own join case
def test_join_gives_a_sentence(server, models, tmp_path_factory):
    env_file = tmp_path_factory.mktemp("join") / ".env"
    with watching(server, models=models) as seen:
        seen.add(consumer(seen, lambda: join.join(server.url, KEY, env_file)))


@examples
@given(models=models_or_errors, reply=chat_replies)
def test_doctor_gives_a_row(server, models, reply):
    with watching(server, models=models, chat=reply) as seen:
        row = consumer(seen, lambda: doctor.probe(made(server, plain=False)))
        if isinstance(row, doctor.Row):
            seen.add(*(str(v) for v in vars(row).values()), repr(row))
