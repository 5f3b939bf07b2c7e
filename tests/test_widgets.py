"""The lesson widgets, driven as a person drives them: set the controls, click the button, read the panel.

The answers come from the real embedded SmolLM2 server (`local_env`); requests are inspected, and streams
broken on purpose, with the loopback FaultServer. Nothing is mocked.
"""

from __future__ import annotations

import re

import pytest
from faultserver import MODEL, WORDS, FaultServer, closed_port

import akash_nb
from akash_nb import _widgets
from akash_nb._conversation import Conversation
from akash_nb._core.providers import LOCAL_MODEL_NAME
from akash_nb._engine import embedded

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SANITIZE_TIMINGS = re.compile(r"\d+\.\d+ s\b")  # tests/sanitize.cfg's timing rule


@pytest.fixture
def local_client(local_env):
    return akash_nb.client(show=False)


@pytest.fixture
def fault():
    with FaultServer() as server:
        yield server


def fault_client(server: FaultServer):
    return akash_nb.client("openai-compatible", base_url=server.url, show=False, max_retries=0, timeout=5)


def closed_client():
    return akash_nb.client(
        "openai-compatible",
        base_url=f"http://127.0.0.1:{closed_port()}/v1",
        show=False,
        max_retries=0,
        timeout=5,
    )


def plain(panel_or_box) -> str:
    return panel_or_box._repr_mimebundle_()["text/plain"]


def assert_one_sentence(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text
    assert "\n" not in text.strip()


# --- Panel against the real model -----------------------------------------------------------------------


@pytest.mark.live
def test_the_model_dropdown_lists_the_live_models_and_selects_the_served_one(local_client):
    panel = akash_nb.panel(local_client, "Say hi", model="Meta-Llama-3-1-8B-Instruct-FP8", max_tokens=8)

    live = sorted(m.id for m in local_client.models.list())
    assert [(label, value) for label, value in panel.model.options] == [(LOCAL_MODEL_NAME, LOCAL_MODEL_NAME)]
    assert live == [LOCAL_MODEL_NAME]
    assert panel.model.value == LOCAL_MODEL_NAME  # the guide's model is not served here: the fallback is
    assert (panel.temperature.min, panel.temperature.max, panel.temperature.step) == (0.0, 2.0, 0.1)
    slider = panel.max_tokens
    assert (slider.min, slider.max, slider.value) == (1, embedded.CONTEXT_TOKENS, 8)
    panel.max_tokens.value = 10**6
    assert panel.max_tokens.value == embedded.CONTEXT_TOKENS  # the embedded model's context per request


@pytest.mark.live
def test_clicking_run_streams_the_answer_into_the_panel_and_names_who_answered(local_client, monkeypatch):
    monkeypatch.setattr(_widgets, "REDRAW_SECONDS", 0.0)  # every piece redraws, so the stream is visible
    panel = akash_nb.panel(local_client, max_tokens=8)
    panel.prompt.value = "Name three colours."
    shown = []
    panel.answer.observe(lambda change: shown.append(change["new"]), names="value")

    panel.run_button.click()

    result = panel.result
    assert result.error is None and result.text.strip()
    assert result.model == LOCAL_MODEL_NAME and result.provider == "local"
    assert result.finish_reason in ("stop", "length")
    assert any(_widgets.CURSOR.strip() in value for value in shown[:-1])  # partial answers appeared...
    assert panel.answer.value == shown[-1] == _widgets.markdown_html(result.text)  # ...then the whole one
    usage = panel.usage.value
    assert f"{LOCAL_MODEL_NAME} via local" in usage and f"finish_reason={result.finish_reason}" in usage
    # llama-server streams usage when asked (stream_options), so the footer has the real counts
    assert result.usage is not None and result.usage.completion_tokens > 0
    assert f"{result.usage.prompt_tokens} prompt" in usage
    assert f"+ {result.usage.completion_tokens} completion tokens" in usage
    assert result.first_token_seconds is not None and 0 < result.first_token_seconds <= result.seconds
    assert not panel.run_button.disabled


@pytest.mark.live
def test_the_plain_text_form_shows_the_settings_then_the_answer_and_keeps_the_widget_view(local_client):
    panel = akash_nb.panel(local_client, "Say hi", max_tokens=8)
    before = panel._repr_mimebundle_()
    assert before["text/plain"] == (
        f"Panel · model {LOCAL_MODEL_NAME} · temperature 0.7 · max_tokens 8 · [Run]\nPrompt: Say hi"
    )
    assert before[WIDGET_VIEW]["model_id"] == panel.model_id

    result = panel.run()

    text = plain(panel)
    assert LOCAL_MODEL_NAME in text and result.text in text and result.usage_line() in text
    stable = SANITIZE_TIMINGS.sub("N.NN s", text)
    assert "first token N.NN s · total N.NN s" in stable and not re.search(r"\d\.\d+ s", stable)


# --- Panel: what it sends ---------------------------------------------------------------------------------


def test_the_controls_decide_the_request(fault):
    panel = akash_nb.panel(
        fault_client(fault),
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Once upon a time"},
        ],
        max_tokens=16,
    )
    assert (panel.system.value, panel.prompt.value) == ("Be brief.", "Once upon a time")

    panel.temperature.value = 0.0
    panel.run_button.click()
    panel.temperature.value = 1.3
    panel.max_tokens.value = 7
    panel.system.value = ""
    panel.run_button.click()

    sent = [payload for method, path, _, payload in fault.requests if method == "POST"]
    assert [(p["temperature"], p["max_tokens"]) for p in sent] == [(0.0, 16), (1.3, 7)]
    assert sent[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Once upon a time"},
    ]
    assert sent[1]["messages"] == [{"role": "user", "content": "Once upon a time"}]
    assert all(
        p["model"] == MODEL and p["stream"] is True and p["stream_options"] == {"include_usage": True}
        for p in sent
    )
    assert panel.result.request == {k: sent[1][k] for k in ("model", "messages", "temperature", "max_tokens")}
    assert panel.result.text == "".join(WORDS) and panel.result.model == MODEL


def test_the_shown_code_sends_exactly_what_the_panel_sends(fault):
    client = fault_client(fault)
    panel = akash_nb.panel(client, "Once upon a time", system="Be brief.", temperature=0.3, max_tokens=9)
    assert panel.code.value == "" and panel.code_button.description == "Show code"
    panel.code_button.value = True
    panel.max_tokens.value = 5  # the shown code follows the controls
    assert "max_tokens=5" in panel.code.value and panel.code_button.description == "Hide code"

    panel.run()
    exec(panel.code_text(), {"client": client, "print": lambda *a, **k: None})  # the learner's paste

    sent = [payload for method, path, _, payload in fault.requests if method == "POST"]
    assert len(sent) == 2 and sent[0] == sent[1]
    assert "client.chat.completions.create(" in panel.code_text()


def test_the_model_line_says_why_the_dropdown_has_one_entry(fault):
    panel = akash_nb.panel(fault_client(fault), "hi")
    assert list(panel.model.options) == [(MODEL, MODEL)]  # (label shown, the id sent)
    assert "serves one model, so the list has one entry" in panel.models_line.value
    assert "3 models" in _widgets.models_note(["a", "b", "c"], "akashml")


def test_an_empty_prompt_is_not_sent(fault):
    panel = akash_nb.panel(fault_client(fault))

    result = panel.run()

    assert result.error == _widgets.NOTHING_TO_SEND and not result.sent
    assert [method for method, *_ in fault.requests] == ["GET"]  # the model list only


def test_model_output_is_rendered_as_markdown_with_html_escaped():
    rendered = _widgets.markdown_html(
        '**bold** <script>alert(1)</script> <img src=x onerror="x()"> [link](javascript:alert(1))'
    )
    assert "<strong>bold</strong>" in rendered
    assert "<script>" not in rendered and "<img" not in rendered and "javascript:" not in rendered
    assert "&lt;script&gt;" in rendered


# --- Panel: failures are one sentence in the panel --------------------------------------------------------


def test_an_unreachable_server_is_one_sentence_in_the_panel():
    panel = akash_nb.panel(closed_client(), "Say hi", max_tokens=8)  # does not raise

    assert panel.problem is not None and "Nothing is listening at http://127.0.0.1:" in panel.problem
    assert panel.problem in panel.answer.value

    result = panel.run()  # tries the models again, then says the same

    assert result.error == panel.problem and result.text == ""
    assert_one_sentence(result.error)
    assert plain(panel).endswith(f"Prompt: Say hi\nError: {result.error}") and panel.usage.value == ""
    assert "Traceback" not in panel.answer.value


@pytest.mark.faults
def test_a_model_the_server_does_not_serve_is_one_sentence_in_the_panel(fault):
    panel = akash_nb.panel(fault_client(fault), "Say hi", max_tokens=8)
    fault.behave("status", status=404)

    result = panel.run()

    assert result.text == "" and result.model is None
    assert "does not serve this (404)" in result.error and "no-such-model" in result.error
    assert_one_sentence(result.error)
    assert f"Error: {result.error}" in plain(panel)
    assert "Traceback" not in panel.answer.value and "does not serve this (404)" in panel.answer.value


@pytest.mark.faults
@pytest.mark.parametrize("behaviour", ["cut", "early-end", "stream-error"])
def test_a_stream_that_stops_mid_way_keeps_its_text_labelled_cut(fault, behaviour):
    panel = akash_nb.panel(fault_client(fault), "Tell me a story", max_tokens=8)
    fault.behave(behaviour, chunks=2)

    result = panel.run()

    assert result.text == "".join(WORDS[:2]) and result.cut and result.finish_reason is None
    assert_one_sentence(result.error)
    assert f"{result.text}\n(cut off: {result.error})" in plain(panel)
    assert "(cut off: " in panel.answer.value and "Once upon" in panel.answer.value
    assert "finish_reason=None" in panel.usage.value


# --- ChatBox -------------------------------------------------------------------------------------------


@pytest.mark.live
def test_two_sends_both_appear_in_the_transcript(local_client):
    box = akash_nb.ChatBox(Conversation(local_client, LOCAL_MODEL_NAME, max_tokens=8))

    first = box.send("Who won the FIFA World Cup in 2022?")
    box.text.value = "Can you tell me more about that?"
    box.send_button.click()

    messages = box.conversation.messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == first
    assert "FIFA World Cup" in box.transcript.value and "tell me more" in box.transcript.value
    assert box.text.value == ""
    assert f"{LOCAL_MODEL_NAME} via local" in box.status_text
    # the footer counts tokens from the stream, and the second turn reuses the first turn's prompt cache
    cached = re.search(r"(\d+) prompt \((\d+) cached\) \+ (\d+) completion tokens", box.status_text)
    assert cached and 0 < int(cached[2]) < int(cached[1]), box.status_text
    text = plain(box)
    assert "user: Who won the FIFA World Cup in 2022?" in text and "user: Can you tell me more" in text
    assert f"assistant: {first}" in text
    assert WIDGET_VIEW in box._repr_mimebundle_()


@pytest.mark.live
def test_a_failed_send_leaves_the_transcript_and_keeps_the_text_to_resend(local_client):
    conversation = Conversation(local_client, LOCAL_MODEL_NAME, max_tokens=8)
    box = akash_nb.ChatBox(conversation)
    box.send("Say hi")
    before = (box.transcript.value, conversation.messages)

    conversation.client = closed_client()
    assert box.send("Say bye") is None

    assert (box.transcript.value, conversation.messages) == before
    assert box.text.value == "Say bye"
    assert "Nothing is listening at" in box.status_text and box.status_text in box.status.value
    assert_one_sentence(box.status_text)

    conversation.client = local_client
    box.send_button.click()  # resend what is still in the box
    assert conversation.messages[-2] == {"role": "user", "content": "Say bye"} and box.text.value == ""

    after = box.transcript.value
    assert box.send("   ") is None and "nothing to send" in box.status_text  # refused before sending
    assert box.transcript.value == after and box.text.value == "   "


@pytest.mark.faults
def test_a_cut_reply_stays_out_of_the_transcript(fault):
    box = akash_nb.ChatBox(Conversation(fault_client(fault), MODEL, max_tokens=8))
    fault.behave("cut", chunks=2)

    assert box.send("Tell me a story") is None

    assert box.conversation.messages == [{"role": "system", "content": "You are a helpful assistant."}]
    assert "Once upon" not in box.transcript.value and box.text.value == "Tell me a story"
    sentence = box.conversation.partial.sentence
    assert_one_sentence(sentence)
    assert box.status_text == f"assistant (cut): Once upon\n(cut off: {sentence})"
    assert "Once upon" in box.status.value and "(cut off: " in box.status.value


def test_a_prompt_too_long_for_the_context_is_refused_before_sending(fault):
    panel = akash_nb.panel(fault_client(fault), "word " * 40_000, max_tokens=16)

    result = panel.run()

    assert "shorten it by about" in result.error and not result.sent
    assert result.error in panel.answer.value
    assert [method for method, *_ in fault.requests] == ["GET"]  # the model list only, no completion
