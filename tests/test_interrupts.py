"""Ctrl-C during a stream, as a learner presses it: a real kernel interrupt (SIGINT through
jupyter_client) while a panel, a ChatBox or a Conversation streams from a slow loopback server.

Afterwards every widget tells the truth: the partial text is kept and marked cut, the status is restored
(no "Sending…", no live cursor, the button enabled), the history is unchanged, and the next request works.
"""

from __future__ import annotations

import json
import time

import pytest
from faultserver import WORDS
from jupyter_client import KernelManager

from akash_nb._core.failures import NO_STATUS

pytestmark = pytest.mark.faults

INTERRUPTED = NO_STATUS["interrupted"].sentence
FULL = "".join(WORDS)


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path_factory.mktemp("kernel")))
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    out, error = execute(
        client,
        "import json, akash_nb\n"
        f"c = akash_nb.client('openai-compatible', base_url={server.url!r}, "
        "show=False, max_retries=0)",
    )
    assert error is None, out
    yield manager, client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def collect(client, msg_id: str, timeout: float = 30) -> tuple[str, str | None]:
    """The cell's printed output and the name of its error, if it raised one."""
    out, error = [], None
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            error = msg["content"]["ename"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out), error


def execute(client, code: str) -> tuple[str, str | None]:
    return collect(client, client.execute(code))


def state(client, expression: str) -> dict:
    out, error = execute(client, f"print(json.dumps({expression}))")
    assert error is None, out
    return json.loads(out)


def after_ctrl_c(kernel, server, setup: str, code: str, expression: str) -> dict:
    """Run `setup`, then `code` while the server streams one word every 0.2 s; Ctrl-C once two words have
    arrived, which stops the cell with KeyboardInterrupt; then the kernel's `expression`."""
    manager, client = kernel
    execute(client, setup)
    server.behave("slow", delay=0.2)
    msg_id = client.execute(code)
    deadline = time.monotonic() + 20
    while server.words_sent < 2:
        assert time.monotonic() < deadline, "the stream never started"
        time.sleep(0.01)
    manager.interrupt_kernel()
    _, error = collect(client, msg_id)
    server.behave("ok")
    assert error == "KeyboardInterrupt"  # the cell stops, as asked
    return state(client, expression)


def test_ctrl_c_during_a_panel_stream_leaves_it_truthful_and_working(kernel, server):
    _, client = kernel
    seen = after_ctrl_c(
        kernel,
        server,
        "p = akash_nb.panel(c, 'Once upon a time', max_tokens=16)",
        "p.run()",
        "{'text': p.result.text, 'error': p.result.error, 'cut': p.result.cut, "
        "'cursor': '▌' in p.answer.value, 'disabled': p.run_button.disabled, "
        "'plain': repr(p)}",
    )
    assert seen["text"].startswith("Once") and seen["text"] != FULL
    assert seen["error"] == INTERRUPTED and seen["cut"]
    assert not seen["cursor"] and not seen["disabled"]
    assert f"(cut off: {INTERRUPTED})" in seen["plain"]
    again = state(client, "(lambda r: {'text': r.text, 'error': r.error})(p.run())")
    assert again == {"text": FULL, "error": None}  # the next request works


def test_ctrl_c_during_a_chatbox_stream_leaves_it_truthful_and_working(kernel, server):
    _, client = kernel
    seen = after_ctrl_c(
        kernel,
        server,
        "box = akash_nb.ChatBox(akash_nb.Conversation(c, 'fault-model'))",
        "box.send('Tell me a story')",
        "{'status': box.status_text, 'turns': len(box.conversation.history), "
        "'cursor': '▌' in box.transcript.value, 'disabled': box.send_button.disabled, "
        "'text': box.text.value}",
    )
    assert "Sending" not in seen["status"] and f"(cut off: {INTERRUPTED})" in seen["status"]
    assert seen["status"].startswith("assistant (cut): Once")
    assert seen["turns"] == 0 and not seen["cursor"] and not seen["disabled"]
    assert seen["text"] == "Tell me a story"  # kept in the box to send again
    again = state(client, "[box.send(), len(box.conversation.history)]")
    assert again == [FULL, 1]


def test_ctrl_c_during_a_conversation_stream_keeps_the_history_and_the_partial(kernel, server):
    _, client = kernel
    seen = after_ctrl_c(
        kernel,
        server,
        "chat = akash_nb.Conversation(c, 'fault-model')\nchat.send('Hi')",
        "chat.send('Tell me a story', stream=True)",
        "{'turns': len(chat.history), 'pending': chat.pending, "
        "'partial': chat.partial.text, 'why': chat.partial.sentence}",
    )
    assert seen["turns"] == 1 and seen["pending"] == "Tell me a story"
    assert seen["partial"].startswith("Once") and seen["why"] == INTERRUPTED
    assert state(client, "[chat.retry(stream=True), len(chat.history)]") == [FULL, 2]
