"""Defaults that respect a learner's time (issue 23, rule 5), against real loopback servers.

A stalled server (it accepted the connection and sends no byte) gives its sentence within 60 s at the
defaults, once, not once per retry; a stream that stalls half-way gives one sentence with the text so far
kept; a slow but steady stream still completes. The real waits run with the default policy scaled down
(`connect.READ_TIMEOUT` and `connect.CONNECT_TIMEOUT`, which `client()`'s default derives from), so each
test takes about a second; one test reads the unscaled policy itself.
"""

from __future__ import annotations

import time

import faultserver
import httpx2
import openai
import pytest
from faultserver import WORDS, FaultServer, sse_chunk

import akash_nb
from akash_nb import _clients
from akash_nb._conversation import Conversation
from akash_nb._core import failures
from akash_nb._core.exceptions import AkashNBError
from akash_nb._streaming import collect_stream

pytestmark = pytest.mark.faults

MESSAGES = [{"role": "user", "content": "Once upon a time"}]
SCALED = 0.5  # the read timeout the real waits run with (the default is 50 s)
SENT = 3  # words a stalling stream sends before it goes quiet


def _stall_mid_stream(h: faultserver.Handler, b: faultserver.Behaviour, payload: dict, number: int) -> None:
    """Start a stream, send `SENT` words, then keep the connection open and send nothing more."""
    h.start_chunked()
    h.chunk(sse_chunk({"role": "assistant", "content": ""}))
    for word in WORDS[:SENT]:
        h.chunk(sse_chunk({"content": word}))
    h.server.fault.closing.wait(faultserver.HANG_LIMIT)
    h.close_connection = True


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setitem(faultserver.BEHAVIOURS, "stall-mid-stream", _stall_mid_stream)
    with FaultServer() as running:
        yield running


@pytest.fixture
def scaled(monkeypatch):
    """The default policy, scaled from 10 s / 50 s to 0.2 s / SCALED."""
    monkeypatch.setattr(_clients, "CONNECT_TIMEOUT", 0.2)
    monkeypatch.setattr(_clients, "READ_TIMEOUT", SCALED)


def made(server: FaultServer, **kwargs) -> openai.OpenAI:
    """akash_nb.client() for the fault server, at the default timeout and retries unless given."""
    return akash_nb.client("openai-compatible", base_url=server.url, show=False, **kwargs)


def ask(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(model=faultserver.MODEL, messages=MESSAGES, **kwargs)


def test_the_default_policy_gives_a_stalled_server_its_sentence_within_60_s(server):
    client = made(server)
    timeout = client.timeout
    assert isinstance(timeout, httpx2.Timeout)
    assert timeout.connect == _clients.CONNECT_TIMEOUT <= 10
    # One read timeout, since a read timeout is not retried (the next test shows it), after a connect that
    # took at most its whole timeout: a stalled server's sentence comes within 60 s even then.
    assert timeout.read is not None and timeout.connect + timeout.read <= 60
    # Long enough for a slow laptop's non-streamed 512-token answer (20-40 s before its first byte).
    assert timeout.read >= 45
    assert client.max_retries == _clients.DEFAULT_RETRIES == 2  # other failures keep their retries


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_a_stalled_server_at_the_default_policy_is_asked_once(server, scaled, stream):
    server.behave("hang")
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as caught:
        ask(made(server), stream=stream)
    seconds = time.monotonic() - started
    assert server.hits == 1  # not retried: the SDK would have waited 3 read timeouts
    assert SCALED <= seconds < SCALED + 0.7
    sentence = failures.explain(caught.value, "Test provider").sentence
    assert sentence.startswith("Test provider did not answer in time;")
    assert "akash_nb.client(timeout=...)" in sentence


def test_an_explicit_timeout_wins_and_a_read_timeout_is_still_not_retried(server, scaled):
    client = made(server, timeout=0.3, max_retries=2)
    assert client.timeout == 0.3
    server.behave("hang")
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client)
    assert server.hits == 1 and time.monotonic() - started < 1.0


def test_a_5xx_at_the_default_policy_is_still_retried(server, scaled):
    server.behave("flaky", status=503, fail_first=1)
    assert ask(made(server)).choices[0].message.content == "".join(WORDS)
    assert server.hits == 2


def test_a_stream_that_stalls_mid_answer_keeps_its_text_in_one_sentence(server, scaled):
    server.behave("stall-mid-stream")
    started = time.monotonic()
    result = collect_stream(ask(made(server), stream=True), "Test provider")
    assert time.monotonic() - started < SCALED + 0.7
    assert result.cut and result.text == "".join(WORDS[:SENT])
    assert result.error is not None and not result.error.retried
    assert result.error.sentence == (
        f"Test provider stopped sending in the middle of the answer (nothing for {SCALED:g} s); the text "
        "so far is kept, marked cut; ask again for the rest, or raise the timeout: "
        "akash_nb.client(timeout=...)."
    )
    assert server.hits == 1


def test_a_conversation_whose_stream_stalls_keeps_the_partial_reply(server, scaled):
    server.behave("stall-mid-stream")
    conversation = Conversation(made(server), faultserver.MODEL)
    with pytest.raises(AkashNBError) as caught:
        conversation.send("Once upon a time", stream=True)
    assert "stopped sending in the middle of the answer" in caught.value.sentence
    assert conversation.partial is not None
    assert conversation.partial.text == "".join(WORDS[:SENT])
    assert conversation.partial.sentence == caught.value.sentence


def test_the_panel_and_chatbox_show_a_stream_that_stalls_mid_answer_as_cut(server, scaled):
    panel = akash_nb.panel(made(server), "Tell me a story", max_tokens=8)  # lists the models first
    server.behave("stall-mid-stream")
    result = panel.run()
    assert result.cut and result.text == "".join(WORDS[:SENT])
    assert result.error is not None and "stopped sending in the middle of the answer" in result.error
    box = akash_nb.ChatBox(Conversation(made(server), faultserver.MODEL, max_tokens=8))
    assert box.send("Tell me a story") is None
    assert box.conversation.partial is not None
    assert box.status_text == (
        f"assistant (cut): {''.join(WORDS[:SENT])}\n(cut off: {box.conversation.partial.sentence})"
    )
    assert "stopped sending in the middle of the answer" in box.conversation.partial.sentence


def test_a_slow_but_steady_stream_longer_than_the_read_timeout_completes(server, scaled):
    server.behave("slow", delay=SCALED / 3)  # 10 words: about 1.7 s in all, over three read timeouts
    started = time.monotonic()
    result = collect_stream(ask(made(server), stream=True), "Test provider")
    assert time.monotonic() - started > SCALED * 3
    assert not result.cut and result.error is None
    assert result.text == "".join(WORDS) and result.finish_reason == "stop"
