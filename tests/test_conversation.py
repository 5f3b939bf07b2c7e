"""Conversation: the guide's "append the reply, then the next message" pattern, made reliable.

Real parts only: the shared embedded SmolLM2 server answers (through a recording loopback proxy where a
test must see what was sent); failures come from a closed port on 127.0.0.1 and from the shared loopback
FaultServer that cuts a stream or answers an error on purpose; the atomic save is tested with a real
SIGKILL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from faultserver import FaultServer, closed_port, connection_to

import akash_nb
from akash_nb._conversation import (
    DEFAULT_SYSTEM,
    Conversation,
    ConversationError,
    Partial,
    Turn,
    estimate_message_tokens,
    estimate_tokens,
)
from akash_nb._core import failures
from akash_nb._core.connection import connection_or_unknown
from akash_nb._core.exceptions import AkashNBError
from akash_nb._core.failures import explain

FAST = {"temperature": 0, "max_tokens": 16}  # deterministic, and each call well under half a second


# --- real parts ------------------------------------------------------------------------------------


@pytest.fixture
def local(local_env):
    """A client for the shared embedded server, and the model it serves."""
    client = akash_nb.client(show=False)
    return client, akash_nb.choose_model(client, show=False)


def client_at(url: str, **kwargs) -> openai.OpenAI:
    return akash_nb.client("openai-compatible", base_url=url, max_retries=0, show=False, **kwargs)


class RecordingProxy:
    """A loopback HTTP proxy in front of the real server that keeps every request body it forwards, so a
    test can see what was really sent."""

    def __init__(self, upstream: str):
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                bodies.append(json.loads(body))
                forwarded = urllib.request.Request(
                    upstream + self.path.removeprefix("/v1"),
                    data=body,
                    headers={
                        "Authorization": self.headers["Authorization"],
                        "Content-Type": "application/json",
                    },
                )
                with urllib.request.urlopen(forwarded) as response:
                    answer = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxied(local):
    """(client through a recording proxy to the embedded server, model, the proxy)."""
    client, model = local
    proxy = RecordingProxy(str(client.base_url).rstrip("/"))
    yield client_at(proxy.url, api_key=client.api_key), model, proxy
    proxy.close()


@pytest.fixture
def fault():
    """The shared misbehaving loopback server (tests/faultserver.py)."""
    with FaultServer() as server:
        yield server


def is_one_sentence(text: str) -> bool:
    return "\n" not in text and text.endswith(".")


def saved(tmp_path, turns: list[tuple[str, str]], system: str | None = "S" * 40, **extra) -> str:
    """A conversation file with these turns, written the way save() writes one."""
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        m for user, assistant in turns for m in Turn(user, assistant).messages()
    ]
    path = tmp_path / "given.json"
    path.write_text(
        json.dumps(
            {
                "model": "m",
                "system": system,
                "params": {},
                "messages": messages,
                "saved": "2025-01-01T00:00:00+00:00",
                **extra,
            }
        )
    )
    return str(path)


def offline_client(key: str = "akml-" + "test-key-never-written") -> openai.OpenAI:
    """A plain openai.OpenAI that is never asked anything (a closed port if it were)."""
    return openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{closed_port()}/v1", max_retries=0)


# --- two turns, as in the guide --------------------------------------------------------------------


@pytest.mark.live
def test_two_turns_keep_the_context_in_the_request(proxied):
    client, model, proxy = proxied
    conversation = Conversation(client, model, **FAST)

    first = conversation.send("Who won the FIFA World Cup in 2022?")
    assert conversation.messages == [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {"role": "user", "content": "Who won the FIFA World Cup in 2022?"},
        {"role": "assistant", "content": first},
    ]
    prompt_tokens = conversation.last_response.usage.prompt_tokens

    second = conversation.send("Can you tell me more about that?")
    assert len(conversation.messages) == 5 and conversation.messages[-1]["content"] == second
    # The second request really carried the first turn: what the server received, not what we think.
    assert proxy.bodies[1]["messages"] == conversation.messages[:4]
    assert proxy.bodies[1]["temperature"] == 0 and proxy.bodies[1]["max_tokens"] == 16
    assert conversation.last_response.usage.prompt_tokens > prompt_tokens
    assert conversation.last_response.model == model
    assert [turn.user for turn in conversation.history] == [
        "Who won the FIFA World Cup in 2022?",
        "Can you tell me more about that?",
    ]
    assert conversation.pending is None and conversation.partial is None
    assert repr(conversation) == f"Conversation(model={model!r}, turns=2)"


def test_messages_is_a_copy(tmp_path):
    conversation = Conversation.load(saved(tmp_path, [("Hi", "Hello!")], system=None), offline_client())
    conversation.messages.append({"role": "user", "content": "not sent"})
    conversation.messages[0]["content"] = "changed"
    assert [m["role"] for m in conversation.messages] == ["user", "assistant"]
    assert conversation.messages[0]["content"] == "Hi"


@pytest.mark.live
def test_a_call_parameter_overrides_the_default(proxied):
    client, model, proxy = proxied
    conversation = Conversation(client, model, **FAST)
    conversation.send("Count to ten.", max_tokens=4)
    assert proxy.bodies[0]["max_tokens"] == 4
    assert conversation.last_response.choices[0].finish_reason == "length"


# --- failures keep the history -------------------------------------------------------------------


@pytest.mark.live
def test_a_refused_connection_keeps_the_history_and_retry_sends_it_again(local):
    client, model = local
    conversation = Conversation(client, model, **FAST)
    conversation.send("Who won the FIFA World Cup in 2022?")
    before, answered = conversation.messages, conversation.last_response
    dead = f"http://127.0.0.1:{closed_port()}/v1"

    conversation.client = client_at(dead)
    with pytest.raises(AkashNBError) as failure:
        conversation.send("Can you tell me more about that?")
    # The sentence is the errors table's, told which provider and URL this client talks to.
    cause = failure.value.__cause__
    assert isinstance(cause, openai.APIConnectionError)
    assert failure.value.sentence == explain(cause, connection_to(dead)).sentence
    assert dead in failure.value.sentence and is_one_sentence(failure.value.sentence)
    assert conversation.messages == before and len(conversation.history) == 1
    assert conversation.pending == "Can you tell me more about that?"
    assert conversation.last_response is answered
    assert "user (not answered yet): Can you tell me more about that?" in conversation.transcript()

    conversation.client = client  # working again
    reply = conversation.retry()
    assert conversation.messages == [
        *before,
        {"role": "user", "content": "Can you tell me more about that?"},
        {"role": "assistant", "content": reply},
    ]
    assert conversation.pending is None
    with pytest.raises(ConversationError, match="nothing to retry"):
        conversation.retry()


def test_a_plain_openai_client_gets_a_generic_provider_title():
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    conversation = Conversation(openai.OpenAI(api_key="x", base_url=dead, max_retries=0), "m")
    with pytest.raises(AkashNBError) as failure:
        conversation.send("Hi")
    assert (
        failure.value.sentence
        == explain(failure.value.__cause__, connection_or_unknown(conversation.client)).sentence
    )
    assert dead in failure.value.sentence
    assert dead in failure.value.sentence and is_one_sentence(failure.value.sentence)
    assert conversation.history == () and conversation.pending == "Hi"


@pytest.mark.faults
@pytest.mark.parametrize(
    ("behaviour", "options", "cause", "says"),
    [
        ("status", {"status": 404}, openai.NotFoundError, "The model `no-such-model` does not exist."),
        ("status", {"status": 500}, openai.InternalServerError, "(500)"),
        ("html", {}, openai.APIResponseValidationError, "text/html"),  # a web page, not the API
        ("bad-json", {}, ValueError, "not valid JSON"),
        ("hang", {}, openai.APITimeoutError, "did not answer in time"),
    ],
)
def test_an_error_answer_keeps_the_history(tmp_path, fault, behaviour, options, cause, says):
    fault.behave(behaviour, **options)
    conversation = Conversation.load(saved(tmp_path, [("Hi", "Hello!")]), client_at(fault.url, timeout=0.5))
    with pytest.raises(AkashNBError) as failure:
        conversation.send("And now?")
    assert isinstance(failure.value.__cause__, cause)
    assert says in failure.value.sentence and is_one_sentence(failure.value.sentence)
    assert conversation.history == (Turn("Hi", "Hello!"),) and conversation.pending == "And now?"


def test_empty_and_wrong_messages_are_refused_before_any_request():
    conversation = Conversation(offline_client(), "m")
    for text in ("", "   \n"):
        with pytest.raises(ConversationError) as refused:
            conversation.send(text)
        assert is_one_sentence(refused.value.sentence) and "empty" in refused.value.sentence
    with pytest.raises(ConversationError, match="must be text"):
        conversation.send(None)
    with pytest.raises(ConversationError, match="needs stream=True"):
        conversation.send("Hi", on_text=print)
    with pytest.raises(ConversationError, match="messages= is set by the conversation"):
        conversation.send("Hi", messages=[])
    with pytest.raises(ConversationError, match="stream= is set by the conversation"):
        Conversation(offline_client(), "m", stream=True)
    with pytest.raises(ConversationError, match="positive whole number"):
        Conversation(offline_client(), "m", budget_tokens=0)
    assert conversation.pending is None and conversation.history == ()


# --- streaming -----------------------------------------------------------------------------------


@pytest.mark.live
def test_streaming_calls_on_text_and_keeps_the_whole_reply(local):
    client, model = local
    conversation = Conversation(client, model, **FAST)
    seen: list[str] = []
    reply = conversation.send("Say hello.", stream=True, on_text=seen.append)
    assert len(seen) > 1 and seen[-1] == reply and all(reply.startswith(text) for text in seen)
    assert conversation.history == (Turn("Say hello.", reply),)
    response = conversation.last_response
    assert response.choices[0].message.content == reply
    assert response.choices[0].finish_reason in ("stop", "length") and response.model == model


@pytest.mark.faults
@pytest.mark.parametrize("behaviour", ["cut", "early-end", "stream-error", "bad-sse"])
def test_a_cut_stream_is_kept_apart_not_added(tmp_path, fault, behaviour):
    fault.behave(behaviour, chunks=3)
    conversation = Conversation.load(saved(tmp_path, [("Hi", "Hello!")]), client_at(fault.url))
    seen: list[str] = []
    with pytest.raises(AkashNBError) as failure:
        conversation.send("Tell me a story.", stream=True, on_text=seen.append)
    assert seen == ["Once", "Once upon", "Once upon a"]
    assert is_one_sentence(failure.value.sentence)
    assert conversation.history == (Turn("Hi", "Hello!"),)  # the cut reply is not a turn
    assert conversation.partial == Partial("Tell me a story.", "Once upon a", failure.value.sentence)
    assert conversation.partial.label == "cut"
    assert conversation.pending == "Tell me a story."
    assert conversation.transcript().endswith("assistant (cut): Once upon a")


@pytest.mark.faults
def test_a_streamed_answer_that_ends_early_says_so(tmp_path, fault):
    fault.behave("early-end", chunks=2)  # a clean end of the HTTP body, but no finish_reason
    conversation = Conversation(client_at(fault.url), "fault-model")
    with pytest.raises(AkashNBError) as failure:
        conversation.send("Tell me a story.", stream=True)
    assert failure.value.sentence == failures.ended_early("your OpenAI-compatible server").sentence


def test_an_on_text_that_raises_leaves_the_reply_apart(tmp_path, fault):
    conversation = Conversation(client_at(fault.behave("ok").url), "fault-model")

    def broken_display(text: str) -> None:
        raise RuntimeError("the widget broke")

    with pytest.raises(RuntimeError, match="the widget broke"):  # the caller's own error, unchanged
        conversation.send("Hi", stream=True, on_text=broken_display)
    assert conversation.history == () and conversation.pending == "Hi"
    assert conversation.partial.text == "Once" and conversation.partial.label == "cut"


@pytest.mark.faults
@pytest.mark.live
def test_retry_after_a_cut_stream_completes_the_turn(local, fault):
    client, model = local
    conversation = Conversation(client_at(fault.behave("cut").url), model, **FAST)
    with pytest.raises(AkashNBError):
        conversation.send("Say hello.", stream=True)
    conversation.client = client
    reply = conversation.retry(stream=True)
    assert conversation.history == (Turn("Say hello.", reply),)
    assert conversation.partial is None and conversation.pending is None


# --- trimming to a budget ------------------------------------------------------------------------


def test_estimate_tokens_is_a_quarter_of_the_characters_rounded_up():
    assert [estimate_tokens(t) for t in ("", "abcd", "abcde", "x" * 400)] == [0, 1, 2, 100]
    assert estimate_message_tokens([{"role": "user", "content": "abcd"}]) == 1 + 4


def test_trim_keeps_the_system_message_and_the_newest_whole_pairs(tmp_path):
    turns = [(f"{i}" * 40, f"{i}" * 40) for i in range(5)]  # 28 estimated tokens a turn
    conversation = Conversation.load(saved(tmp_path, turns), offline_client())
    system, newest = conversation.messages[0], {"role": "user", "content": "n" * 40}  # 14 tokens each

    assert conversation.trimmed(100, "n" * 40) == [system, *conversation.messages[7:], newest]
    for budget in range(28, 200):
        sent = conversation.trimmed(budget, "n" * 40)
        assert estimate_message_tokens(sent) <= budget
        assert sent[0] == system and sent[-1] == newest
        kept = sent[1:-1]
        assert kept == conversation.messages[len(conversation.messages) - len(kept) :]  # the newest, whole
        assert [m["role"] for m in kept] == ["user", "assistant"] * (len(kept) // 2)
    assert conversation.trimmed(10_000, "n" * 40) == [*conversation.messages, newest]
    # Without a next message, the newest turn is the one never dropped.
    assert conversation.trimmed(42) == [system, *conversation.messages[-2:]]
    assert len(conversation.history) == 5  # trimming shapes the request, never the history


def test_a_newest_message_over_the_budget_says_by_how_much(tmp_path):
    conversation = Conversation.load(saved(tmp_path, [("a" * 40, "b" * 40)]), offline_client())
    with pytest.raises(ConversationError) as refused:
        conversation.trimmed(20, "n" * 40)
    assert refused.value.sentence == (
        "The newest message (with the system message) does not fit the budget: it needs about 28 tokens, "
        "8 more than budget_tokens=20; shorten it, or raise budget_tokens."
    )
    conversation.budget_tokens = 20
    with pytest.raises(ConversationError, match="8 more than budget_tokens=20"):
        conversation.send("n" * 40)  # refused before any request: the client's port is closed
    assert conversation.pending is None and len(conversation.history) == 1


@pytest.mark.live
def test_send_trims_every_request_to_the_budget(proxied):
    client, model, proxy = proxied
    conversation = Conversation(client, model, budget_tokens=50, **FAST)
    questions = ["What is 1 + 1?", "And 2 + 2?", "And 3 + 3?"]
    for question in questions:
        conversation.send(question)
    for body, question in zip(proxy.bodies, questions, strict=True):
        assert estimate_message_tokens(body["messages"]) <= 50
        assert body["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM}
        assert body["messages"][-1] == {"role": "user", "content": question}
    assert len(proxy.bodies[-1]["messages"]) < len(conversation.messages) - 1  # something was left out
    assert conversation.last_request["messages"] == proxy.bodies[-1]["messages"]
    assert len(conversation.history) == 3


# --- saving and loading --------------------------------------------------------------------------


@pytest.mark.live
def test_save_and_load_round_trip(local, tmp_path):
    client, model = local
    conversation = Conversation(client, model, budget_tokens=4000, **FAST)
    conversation.send("Who won the FIFA World Cup in 2022?")
    path = conversation.save(tmp_path / "chat.json")

    data = json.loads(path.read_text())
    assert {"model", "system", "params", "messages", "saved"} <= set(data)
    assert data["messages"] == conversation.messages and data["params"] == FAST
    restored = Conversation.load(path, client)
    assert (restored.model, restored.system, restored.params, restored.budget_tokens) == (
        model,
        DEFAULT_SYSTEM,
        FAST,
        4000,
    )
    assert restored.messages == conversation.messages and restored.history == conversation.history
    restored.send("Can you tell me more about that?")  # and it carries on
    assert len(restored.history) == 2


@pytest.mark.live
def test_save_is_private_and_never_holds_the_key(local, tmp_path):
    client, _ = local
    assert client.api_key and client.api_key != "no-key-needed"  # the embedded server's own key
    conversation = Conversation.load(saved(tmp_path, [("Hi", "Hello!")]), client)
    path = tmp_path / "saved" / "chat.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)
    conversation.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert client.api_key.encode() not in path.read_bytes()
    assert os.listdir(path.parent) == ["chat.json"]  # no temporary file left behind

    leaky = Conversation(offline_client(key="akml-secret-123"), "m")
    leaky.system = "My key is akml-secret-123."
    with pytest.raises(ConversationError, match="contains the client's API key"):
        leaky.save(tmp_path / "leak.json")
    assert not (tmp_path / "leak.json").exists()


def test_loading_a_missing_or_broken_file_is_one_sentence(tmp_path):
    with pytest.raises(ConversationError, match=r"^There is no saved conversation at"):
        Conversation.load(tmp_path / "none.json", offline_client())
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": "m", "mess')
    with pytest.raises(ConversationError, match="is not a saved conversation"):
        Conversation.load(broken, offline_client())
    data = json.loads(Path(saved(tmp_path, [])).read_text())
    data["messages"].append({"role": "user", "content": "unanswered"})
    broken.write_text(json.dumps(data))
    with pytest.raises(ConversationError, match="not whole user/assistant pairs"):
        Conversation.load(broken, offline_client())


SAVER = textwrap.dedent("""
    import sys, openai
    from akash_nb._conversation import Conversation
    template, path, version = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conversation = Conversation.load(template, openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9"))
    while True:
        version += 1
        conversation.system = f"version {version}"
        conversation.params = {"seed": version}
        conversation.save(path)
""")


def test_save_is_atomic_under_sigkill(tmp_path):
    """A saver killed mid-write leaves a file that loads, with one whole version (old or new) in it."""
    template = saved(tmp_path, [("q" * 2000, "a" * 2000)] * 300)  # about 1.2 MB a save
    path = tmp_path / "live" / "chat.json"
    path.parent.mkdir()

    def check() -> int:
        restored = Conversation.load(path, offline_client())  # raises if torn
        version = restored.params["seed"]
        assert restored.system == f"version {version}" and len(restored.history) == 300
        return version

    last = 0
    for _ in range(3):  # three kills, each at a random moment while it saves over and over
        saver = subprocess.Popen([sys.executable, "-c", SAVER, template, str(path), str(last)])
        try:
            deadline = time.monotonic() + 20
            while not path.exists() or check() < last + 2:  # it is saving over and over: read meanwhile
                assert saver.poll() is None and time.monotonic() < deadline
            time.sleep(random.uniform(0, 0.05))
        finally:
            saver.kill()  # SIGKILL; TerminateProcess on Windows, which has no signals to catch
            saver.wait()
        assert saver.returncode == (1 if sys.platform == "win32" else -signal.SIGKILL)
        version = check()
        assert version >= last
        last = version
    leftovers = [name for name in os.listdir(path.parent) if name != "chat.json"]
    assert all(name.startswith(".chat.json.") and name.endswith(".tmp") for name in leftovers)


# --- display -------------------------------------------------------------------------------------


def test_the_transcript_reads_like_the_guide(tmp_path):
    conversation = Conversation.load(
        saved(tmp_path, [("Who won?", "Argentina.\n\nIn a shootout.")], system="Be brief."), offline_client()
    )
    bundle = conversation._repr_mimebundle_()
    assert bundle["text/plain"] == (
        "system: Be brief.\nuser: Who won?\nassistant: Argentina.\n\nIn a shootout."
    )
    assert bundle["text/markdown"] == (
        "**system:**\n\n> Be brief.\n\n**user:**\n\n> Who won?\n\n"
        "**assistant:**\n\n> Argentina.\n>\n> In a shootout."
    )
    assert repr(conversation) == "Conversation(model='m', turns=1)"
    assert Conversation(offline_client(), "m", system=None).transcript() == "(no messages yet)"


def test_show_displays_the_bundle():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    try:
        conversation = Conversation(offline_client(), "m")
        with capture_output() as captured:
            conversation.show()
        assert captured.outputs[0].data == conversation._repr_mimebundle_()
    finally:
        InteractiveShell.clear_instance()


@pytest.mark.live
def test_a_bad_parameter_is_refused_before_sending_and_keeps_the_history(local_env):
    client = akash_nb.client(show=False)
    chat = Conversation(client, akash_nb.choose_model(client, show=False), temperature=0, max_tokens=8)
    chat.send("Hi")
    before = chat.messages
    with pytest.raises(AkashNBError, match=r"temperature=3\.5 is outside 0–2"):
        chat.send("Again", temperature=3.5)
    assert chat.messages == before and chat.pending is None
