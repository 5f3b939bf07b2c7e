"""Every response shape real servers send, in every consumer, streamed and not (issue 23 rule 3).

The shapes are behaviours of tests/faultserver.py: empty `choices`, Azure's content-filter chunk (a choice
with no `delta` or `message`), `content: null` with `tool_calls`, a usage-only chunk, a stream that ends
without `[DONE]` (with and without a finish_reason), and unknown fields everywhere. Each consumer turns
each shape into text (a tool call is named in a note), or one AkashNBError sentence with the text that
arrived kept and labelled cut: never AttributeError, IndexError, TypeError or KeyError.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import openai
import pytest
from faultserver import MODEL, WORDS, FaultServer

import akash_nb
from akash_nb import _guide, _render, _streaming, exercises
from akash_nb._conversation import Conversation
from akash_nb._core.exceptions import AkashNBError
from akash_nb._widgets import ChatBox, Panel

pytestmark = pytest.mark.faults

FULL = "".join(WORDS)
MESSAGES = [{"role": "user", "content": "Once upon a time"}]


@dataclass(frozen=True)
class Expect:
    """What a shape must give: the whole text, or a sentence (with `kept`, the text so far) containing
    `says`; `says` must also appear in what is shown when the text is empty (a note)."""

    text: str | None = None  # the answer's text when the shape is a complete answer
    says: str = ""  # words the sentence or the note must hold
    kept: str = ""  # the text a sentence keeps (cut)


# (behaviour, options, streamed?) -> what it must give.
SHAPES: dict[tuple[str, bool], tuple[dict[str, object], Expect]] = {
    ("empty-choices", True): ({}, Expect(says="no choices")),
    ("empty-choices", False): ({}, Expect(says="no choices")),
    ("filter-chunk", True): ({}, Expect(text=FULL)),
    ("filter-chunk", False): ({}, Expect(says="content filter")),
    ("tool-calls", True): ({}, Expect(text="", says="get_weather")),
    ("tool-calls", False): ({}, Expect(text="", says="get_weather")),
    ("usage-only", True): ({}, Expect(text=FULL)),
    ("usage-only", False): ({}, Expect(says="no choices")),
    ("no-done", True): ({}, Expect(text=FULL)),
    ("no-done-no-finish", True): ({"finish": False}, Expect(says="finish_reason", kept=FULL)),
    ("unknown-fields", True): ({}, Expect(text=FULL)),
    ("unknown-fields", False): ({}, Expect(text=FULL)),
}


# Where text cannot hold the shape, a sentence instead of a note: a conversation's turn is text only.
SENTENCE_INSTEAD = {("conversation", "tool-calls"), ("chatbox", "tool-calls")}
CUT = "\n(cut off: "  # how a shown answer labels the text kept before its sentence
NOTE = "(no text: "  # how a shown answer begins that is only a note


@dataclass(frozen=True)
class Outcome:
    text: str  # the answer's text (the partial text when there is a sentence)
    sentence: str | None  # the AkashNBError sentence, if the consumer gave one
    shown: str  # everything the consumer shows or returns, as plain text


def _shown(text: str, shown: str) -> Outcome:
    """The Outcome of an answer shown as `text`: a note is no text, a cut label splits off its sentence."""
    kept, cut, sentence = text.partition(CUT)
    kept = "" if kept.startswith(NOTE) else kept
    return Outcome(kept, sentence.rstrip().removesuffix(")") if cut else None, shown)


def _client(server: FaultServer) -> openai.OpenAI:
    return akash_nb.client(
        provider="openai-compatible", base_url=server.url, show=False, max_retries=0, timeout=5
    )


def _create(client: openai.OpenAI, streamed: bool) -> object:
    if streamed:
        return client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    return client.chat.completions.create(model=MODEL, messages=MESSAGES)


def _collect(client: openai.OpenAI, streamed: bool) -> Outcome:
    result = _streaming.collect_stream(_create(client, True), "Test provider")
    sentence = result.error.sentence if result.error else None
    note = getattr(result, "note", None) or ""
    return Outcome(result.text, sentence, f"{result.text}\n{note}\n{sentence or ''}")


def _panel(client: openai.OpenAI, streamed: bool) -> Outcome:
    result = Panel(client, "Once upon a time", model=MODEL).run()
    return Outcome(result.text, result.error, str(result))


def _chatbox(client: openai.OpenAI, streamed: bool) -> Outcome:
    box = ChatBox(Conversation(client, MODEL))
    reply = box.send("Once upon a time")
    if reply is None:
        partial = box.conversation.partial
        return Outcome(partial.text if partial else "", box.status_text, repr(box))
    return Outcome(reply, None, repr(box))


def _conversation(client: openai.OpenAI, streamed: bool) -> Outcome:
    conversation = Conversation(client, MODEL)
    try:
        reply = conversation.send("Once upon a time", stream=streamed)
    except AkashNBError as error:
        partial = conversation.partial
        return Outcome(partial.text if partial else "", error.sentence, conversation.transcript())
    return Outcome(reply, None, conversation.transcript())


def _answer_of(client: openai.OpenAI, streamed: bool) -> object:
    """What a lesson hands show_answer and guide_vs_you: the response, or a collected stream."""
    made = _create(client, streamed)
    return _streaming.collect_stream(made, client) if streamed else made  # type: ignore[arg-type]


def _show_answer(client: openai.OpenAI, streamed: bool) -> Outcome:
    answer = _answer_of(client, streamed)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            _render.show_answer(answer, client)  # type: ignore[arg-type]
    except AkashNBError as error:
        return Outcome(getattr(answer, "text", ""), error.sentence, printed.getvalue())
    text = printed.getvalue().rsplit("\n", 2)[0]  # the answer, without the footer line
    return _shown(text.replace("\n(cut off: ", CUT), printed.getvalue())


def _guide_vs_you(client: openai.OpenAI, streamed: bool) -> Outcome:
    answer = _answer_of(client, streamed)
    try:
        shown = _guide.guide_vs_you("completion", answer, client)  # type: ignore[arg-type]
    except AkashNBError as error:
        return Outcome(getattr(answer, "text", ""), error.sentence, "")
    return _shown(shown.answer, str(shown))


def _exercises(client: openai.OpenAI, streamed: bool) -> Outcome:
    """Every check of a response (or, streamed, the stream-cost check of its chunks) gives a Check."""
    if streamed:
        chunks = list(_create(client, True))  # type: ignore[call-overload]
        check = exercises.check_stream_cost(lambda usage, i, o: 0.0, chunks)
        return Outcome("", None, str(check))
    response = _create(client, False)
    third = [{"role": "system", "content": "s"}] + [
        {"role": role, "content": "x"} for role in ("user", "assistant") * 3
    ]
    checks = [
        exercises.check_setup(response, MODEL, [MODEL]),
        exercises.check_length_stop(response),
        exercises.check_third_turn(third, response),
        exercises.check_summary(response, _guide.GUIDE_TEXT),
        exercises.check_repeatable(response, _create(client, False)),
        exercises.check_extraction(response),
    ]
    return Outcome("", None, "\n".join(str(c) for c in checks))


CONSUMERS: dict[str, tuple[Callable[[openai.OpenAI, bool], Outcome], tuple[bool, ...]]] = {
    "collect_stream": (_collect, (True,)),
    "panel": (_panel, (True,)),
    "chatbox": (_chatbox, (True,)),
    "conversation": (_conversation, (True, False)),
    "show_answer": (_show_answer, (True, False)),
    "guide_vs_you": (_guide_vs_you, (True, False)),
    "exercises": (_exercises, (True, False)),
}

CELLS = [
    pytest.param(consumer, shape, streamed, id=f"{consumer}-{shape}-{'stream' if streamed else 'plain'}")
    for consumer, (_, modes) in CONSUMERS.items()
    for (shape, streamed) in SHAPES
    if streamed in modes
]


@pytest.mark.parametrize(("consumer", "shape", "streamed"), CELLS)
def test_every_consumer_handles_every_shape(server, consumer, shape, streamed):
    options, expect = SHAPES[(shape, streamed)]
    server.behave(shape.removesuffix("-no-finish"), **options)
    run, _ = CONSUMERS[consumer]
    outcome = run(_client(server), streamed)  # any exception but AkashNBError fails the test here
    if consumer == "exercises":  # checks say what is wrong in their own words; none may crash
        assert "✗" in outcome.shown or "✓" in outcome.shown
        if expect.says and not streamed:
            assert expect.says in outcome.shown
        return
    if (consumer, shape) in SENTENCE_INSTEAD:
        expect = Expect(says=expect.says)
    if expect.text is not None:
        assert outcome.sentence is None, outcome.sentence
        assert outcome.text.strip() == expect.text
    else:
        assert outcome.sentence, f"no sentence for {shape}: {outcome.shown!r}"
        assert outcome.text == expect.kept
        assert expect.says in outcome.sentence
        if expect.kept:
            assert "cut" in (outcome.shown + outcome.sentence)
    assert expect.says in outcome.shown + (outcome.sentence or "")
