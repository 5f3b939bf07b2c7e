"""Hostile input, systematically: every public function and widget parameter, as a hostile but realistic
user would fill it in.

The rule, for every parameter and any value (wrong type, out of range, empty, huge, control, invisible or
non-ASCII characters): either the call works (after documented normalisation), or it raises an
AkashNBError whose message is one sentence naming the parameter and the fix. Never another exception.

The first part holds one test per example of issue 14's "Why" (each failed before the fix); the second the
Hypothesis properties that generalise them. Every client talks to a real loopback server (faultserver).
"""

from __future__ import annotations

import math

import openai
import pytest
from faultserver import WORDS
from hypothesis import given
from hypothesis import strategies as st

import akash_nb
from akash_nb import _render, _streaming, cli, doctor
from akash_nb import generated_code as code
from akash_nb._conversation import Conversation
from akash_nb._core import config, failures, masking, request_checks
from akash_nb._core.api_key import Secret
from akash_nb._core.exceptions import AkashNBError
from akash_nb._widgets import ChatBox

pytestmark = pytest.mark.faults

FULL = "".join(WORDS)
USER = [{"role": "user", "content": "Once upon a time"}]


@pytest.fixture
def ok(server):
    server.behave("ok")
    return server


@pytest.fixture
def own_secrets(monkeypatch):
    """Secrets a property makes are forgotten after it: hypothesis's text must not mask later tests' text."""
    monkeypatch.setattr(masking, "_known", set(masking._known))


def made(server, **kwargs) -> openai.OpenAI:
    return akash_nb.client("openai-compatible", base_url=server.url, show=False, max_retries=0, **kwargs)


def one_sentence(error: AkashNBError, *names: str) -> None:
    """The rule's second outcome: one sentence (no line break, ends in a full stop) naming the parameter."""
    text = error.sentence
    assert "\n" not in text and text.endswith((".", ".)")) and "Traceback" not in text, text
    if names:
        lowered = text.lower()
        assert any(n.lower().rstrip("s") in lowered or n.split("_")[-1].lower() in lowered for n in names), (
            names,
            text,
        )


def holds(call, *names: str):
    """Run `call`: it works (returns its value) or raises a one-sentence AkashNBError naming `names`."""
    try:
        return call()
    except AkashNBError as error:
        one_sentence(error, *names)
        return error


# --- the examples of issue 14, each a test that failed before the fix ------------------------------------


@pytest.mark.parametrize("invisible", ["\ufeff", "\u200b", "\u200d"])
def test_a_key_pasted_with_an_invisible_character_works_and_the_banner_says_so(ok, monkeypatch, invisible):
    monkeypatch.setenv("AKASH_NB_API_KEY", invisible + "class-key-0123456789" + invisible)
    client = made(ok)
    assert akash_nb.served_models(client) == ["fault-model"]  # was UnicodeEncodeError on every request
    assert ok.requests[-1][2]["authorization"] == "Bearer class-key-0123456789"
    source = akash_nb.connection_for(client).key_source
    assert source.startswith("environment variable AKASH_NB_API_KEY (invisible characters removed:")


def test_doctor_with_an_invisible_character_in_the_key_does_not_crash(ok, monkeypatch):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "openai-compatible")
    monkeypatch.setenv("AKASH_NB_BASE_URL", ok.url)
    monkeypatch.setenv("AKASH_NB_API_KEY", "\ufeffclass-key-0123456789")
    row = doctor.probe_provider("openai-compatible")
    assert row.ok and "invisible characters removed: BOM" in row.configured


def test_a_key_with_a_character_no_key_has_is_one_sentence():
    with pytest.raises(AkashNBError) as caught:
        config.resolve("openai-compatible", base_url="http://h/v1", api_key="clé-0123456789", environ={})
    one_sentence(caught.value, "key")
    assert "U+00E9" in caught.value.sentence and "copy the key again" in caught.value.sentence


def test_panel_with_max_tokens_ten_is_one_sentence_naming_it(ok):
    with pytest.raises(AkashNBError) as caught:
        akash_nb.panel(made(ok), "hi", max_tokens="ten")  # was TypeError
    assert caught.value.sentence == (
        "max_tokens= must be a whole number, not a str ('ten'); for example max_tokens=128."
    )


def test_max_tokens_ten_sent_straight_is_refused_before_sending_not_an_internal_error(server):
    server.behave("typed-500")  # what llama-server answers to it, were it sent
    client = akash_nb.client("openai-compatible", base_url=server.url, show=False)  # 2 retries
    with pytest.raises(AkashNBError) as caught:
        client.chat.completions.create(model="m", messages=USER, max_tokens="ten")
    assert caught.value.sentence == (
        "max_tokens= must be a whole number, not a str ('ten'); for example max_tokens=100."
    )
    assert server.hits == 0  # refused here: nothing sent, nothing retried


@pytest.mark.parametrize(
    ("status", "behaviour"),
    [
        (500, {"name": "typed-500"}),  # the llama.cpp the issue was filed on
        (
            400,
            {
                "name": "status",
                "status": 400,
                "body": {
                    "error": {  # llama.cpp 0.5: 400, naming the field
                        "code": 400,
                        "type": "invalid_request_error",
                        "message": (
                            "Field 'max_tokens': [json.exception.type_error.302] type must be number, but "
                            "is string"
                        ),
                    }
                },
            },
        ),
    ],
)
def test_max_tokens_ten_from_a_plain_client_is_explained_as_the_parameter(server, status, behaviour):
    server.behave(**behaviour)
    plain = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        plain.chat.completions.create(model="m", messages=USER, max_tokens="ten")
    sentence = failures.explain(caught.value, "The server").sentence
    assert sentence == (
        f"The server failed on a parameter of the request ({status}): max_tokens= must be a "
        "whole number, not a str ('ten'); for example max_tokens=100."
    )


def test_a_prompt_over_the_context_streamed_says_context_not_ended_early(server):
    server.behave("error-field")  # llama-server: 200, then `error: {...exceed_context_size_error...}`
    plain = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
    result = _streaming.collect_stream(
        plain.chat.completions.create(model="m", messages=USER, stream=True), "The embedded model"
    )
    assert result.cut and result.text == ""
    assert result.error.sentence == (
        "The embedded model says the request does not fit the model's context "
        "(the request exceeds the available context size, try increasing it); "
        "shorten the prompt or the history, or lower max_tokens."
    )


def test_a_prompt_over_the_context_not_streamed_says_context_not_malformed(server):
    server.behave(
        "status",
        status=400,
        body={
            "error": {
                "code": 400,
                "type": "exceed_context_size_error",
                "n_ctx": 4096,
                "message": "the request exceeds the available context size, try increasing it",
            }
        },
    )
    plain = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        plain.chat.completions.create(model="m", messages=USER)
    sentence = failures.explain(caught.value, "The embedded model").sentence
    assert "does not fit the model's context" in sentence and "malformed" not in sentence


@pytest.mark.parametrize("temperature", ["0.7", "hot", True, [0.7]])
def test_a_wrong_typed_temperature_is_not_called_out_of_range(temperature):
    with pytest.raises(AkashNBError) as caught:
        request_checks.check_request(USER, temperature=temperature)
    assert caught.value.sentence.startswith("temperature= must be a number, not ")
    assert "outside" not in caught.value.sentence


def test_a_saved_conversation_of_the_wrong_shape_names_the_field_not_python(ok, tmp_path):
    path = tmp_path / "chat.json"
    path.write_text('{"model": "m", "system": null, "params": {"model": "x"}, "messages": []}')
    with pytest.raises(AkashNBError) as caught:
        Conversation.load(path, made(ok))
    assert "__init__" not in caught.value.sentence and "multiple values" not in caught.value.sentence
    assert caught.value.sentence == (
        f"{path} is not a saved conversation (its 'params' holds 'model', which "
        "is not a create() parameter it can pass); load a file written by "
        "conversation.save(path)."
    )


def test_a_saved_conversation_with_null_content_is_refused_not_loaded_as_none(ok, tmp_path):
    path = tmp_path / "chat.json"
    path.write_text(
        '{"model": "m", "system": null, "params": {}, "messages": '
        '[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": null}]}'
    )
    with pytest.raises(AkashNBError) as caught:
        Conversation.load(path, made(ok))
    assert "its message 2 (assistant) has content null, not text" in caught.value.sentence


def test_a_recording_of_the_wrong_shape_is_a_sentence_not_an_attribute_error(tmp_path, monkeypatch):
    folder = tmp_path / "recordings"
    folder.mkdir()
    (folder / "0123456789abcdef.json").write_text("[1, 2, 3]")  # valid JSON, wrong shape
    monkeypatch.setenv("AKASH_NB_RECORDINGS", str(folder))
    client = akash_nb.client("replay", show=False)  # was AttributeError: 'list' object has no attribute 'get'
    assert "no recordings yet" in akash_nb.connection_for(client).detail


def test_a_server_echoing_a_key_of_any_shape_never_shows_it(server, monkeypatch):
    key = "classroom0key0WITHOUT0prefix"  # the class server's own key has no prefix
    server.behave("echo", status=400)
    monkeypatch.setenv("AKASH_NB_API_KEY", key)
    client = made(server)
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(client)
    for text in (caught.value.sentence, str(caught.value), repr(caught.value)):
        assert key not in text and key[-4:] not in text, text


def test_outside_ipython_the_banner_and_answer_are_plain_text(ok, capsys):
    client = akash_nb.client("openai-compatible", base_url=ok.url, max_retries=0)  # show=True
    response = client.chat.completions.create(model="fault-model", messages=USER)
    akash_nb.show_answer(response, client)
    out = capsys.readouterr().out
    assert "text/plain" not in out and "<div" not in out and "{" not in out
    assert out.startswith("Provider: openai-compatible — your OpenAI-compatible server\nURL: ")
    assert FULL in out and "fault-model via openai-compatible · finish_reason=stop" in out


def test_doctor_names_a_key_from_the_environment_as_such(ok, monkeypatch):
    monkeypatch.setenv("AKASH_NB_BASE_URL", ok.url)
    monkeypatch.setenv("AKASH_NB_API_KEY", "env-key-0123456789")
    row = doctor.probe_provider("openai-compatible")
    assert row.configured == "environment variable AKASH_NB_API_KEY"  # was "the api_key= argument"


# --- properties: every public function and parameter -----------------------------------------------------

INVISIBLE = st.sampled_from(
    ["\ufeff", "\u200b", "\u200d", "\u2060", "\x00", "\x1b", "\x7f", "\u202e", "\r\n", "\t"]
)
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Lo", "So", "Mn"]), max_size=12),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=8), INVISIBLE, st.text(max_size=8)),
    st.sampled_from(["", "   ", "x" * 100_000, "é" * 50, "☃", "0", "-1", "1e309", "None", "null"]),
    st.binary(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(object()),
    st.just(math.nan),
    st.just(10**100),
)


@pytest.mark.parametrize(
    "name", ["provider", "base_url", "api_key", "model", "timeout", "max_retries", "show"]
)
@given(value=HOSTILE)
def test_property_client_parameters(ok, own_secrets, name, value):
    """akash_nb.client(): works and then serves a request, or one sentence naming the parameter."""
    arguments = {
        "provider": "openai-compatible",
        "base_url": ok.url,
        "show": False,
        "max_retries": 0,
        name: value,
    }
    if name == "provider" and isinstance(value, str) and value.strip().lower() in ("local", "replay"):
        return  # a real provider name: covered by their own tests (it would start a server)
    result = holds(lambda: akash_nb.client(**arguments), name)
    if isinstance(result, openai.OpenAI):
        holds(lambda: akash_nb.served_models(result))  # no UnicodeEncodeError from a key, say


@pytest.mark.parametrize("name", ["provider", "base_url", "api_key", "model"])
@given(value=HOSTILE)
def test_property_resolve_parameters(own_secrets, name, value):
    arguments = {"provider": "openai-compatible", "base_url": "http://h/v1", name: value}
    holds(lambda: config.resolve(**arguments, environ={}, dotenv_path=None), name)


@given(value=HOSTILE)
def test_property_functions_taking_a_client(ok, value):
    for function in (
        akash_nb.served_models,
        akash_nb.last_latency,
        akash_nb.connection_for,
        akash_nb.choose_model,
        doctor.probe,
    ):
        holds(lambda f=function: f(value), "client")


@given(value=HOSTILE)
def test_property_choose_model_requested(ok, value):
    client = made(ok)
    holds(lambda: akash_nb.choose_model(client, value, show=False), "requested")


@pytest.mark.parametrize("name", ["prompt", "messages", "model", "temperature", "max_tokens", "system"])
@given(value=HOSTILE)
def test_property_panel_parameters(ok, name, value):
    """akash_nb.panel(): built and run, or one sentence naming the parameter; run() never raises."""
    arguments = {"prompt": "Once upon a time", name: value}
    panel = holds(lambda: akash_nb.panel(made(ok), **arguments), name)
    if isinstance(panel, akash_nb.Panel):
        result = panel.run()
        assert result.error is None or "\n" not in result.error
        assert "▌" not in panel.answer.value


@pytest.mark.parametrize("name", ["model", "system", "budget_tokens", "temperature", "max_tokens"])
@given(value=HOSTILE)
def test_property_conversation_parameters(ok, name, value):
    arguments = {"model": "fault-model", name: value}
    chat = holds(lambda: Conversation(made(ok), **arguments), name)
    if isinstance(chat, Conversation):
        before = chat.messages
        reply = holds(lambda: chat.send("Hi"), name)
        if isinstance(reply, AkashNBError):
            assert chat.messages == before  # nothing half-added


@pytest.mark.parametrize("name", ["text", "stream", "on_text", "temperature", "max_tokens", "top_p"])
@given(value=HOSTILE)
def test_property_conversation_send_parameters(ok, name, value):
    chat = Conversation(made(ok), "fault-model")
    arguments = {"text": "Hi", name: value}
    if name == "on_text":
        arguments["stream"] = True
    reply = holds(lambda: chat.send(**arguments), name, "message")
    assert len(chat.history) == (0 if isinstance(reply, AkashNBError) else 1)


@pytest.mark.parametrize("method", ["trimmed-budget", "trimmed-next", "save", "load"])
@given(value=HOSTILE)
def test_property_conversation_methods(ok, tmp_path, method, value):
    chat = Conversation(made(ok), "fault-model")
    calls = {
        "trimmed-budget": (lambda: chat.trimmed(value), "budget_tokens"),
        "trimmed-next": (lambda: chat.trimmed(None, value), "next_message"),
        "save": (lambda: chat.save(value), "path"),
        "load": (lambda: Conversation.load(value, made(ok)), "path"),
    }
    call, name = calls[method]
    if method == "save" and isinstance(value, str):
        return  # a str is a path: writing where hypothesis says is for test_hostile_files
    holds(call, name, "conversation", "saved")


@given(value=HOSTILE)
def test_property_chatbox(ok, value):
    holds(lambda: ChatBox(value), "conversation")
    box = ChatBox(Conversation(made(ok), "fault-model"))
    reply = holds(lambda: box.send(value), "text")
    assert "Sending…" not in box.status_text and "▌" not in box.transcript.value
    assert len(box.conversation.history) == (1 if isinstance(reply, str) else 0)


@pytest.mark.parametrize("name", ["messages", "model", "temperature", "max_tokens", "context_tokens"])
@given(value=HOSTILE)
def test_property_check_request(name, value):
    arguments = {"messages": USER, name: value}
    holds(lambda: request_checks.check_request(**arguments), name, "message", "prompt")


@given(
    messages=st.lists(
        st.one_of(
            HOSTILE,
            st.fixed_dictionaries(
                {
                    "role": HOSTILE,
                    "content": st.one_of(
                        HOSTILE,
                        st.lists(
                            st.dictionaries(st.sampled_from(["type", "text"]), HOSTILE, max_size=2),
                            max_size=2,
                        ),
                    ),
                }
            ),
        ),
        max_size=3,
    )
)
def test_property_check_request_messages_shapes(messages):
    holds(lambda: request_checks.check_request(messages), "message", "prompt")


@pytest.mark.parametrize("name", ["kind", "text", "rich"])
@given(value=HOSTILE)
def test_property_show(name, value, capsys):
    arguments = {"kind": "note", "text": "Hello", name: value}
    holds(lambda: _render.show(**arguments), name)


@pytest.mark.parametrize("name", ["response", "client", "seconds"])
@given(value=HOSTILE)
def test_property_show_answer(ok, name, value, capsys):
    client = made(ok)
    arguments = {
        "response": client.chat.completions.create(model="m", messages=USER),
        "client": client,
        name: value,
    }
    holds(lambda: _render.show_answer(**arguments), name)


@given(value=HOSTILE)
def test_property_explain_and_show_error(value, capsys):
    for call in (
        lambda: akash_nb.explain(value),
        lambda: akash_nb.show_error(value),
        lambda: akash_nb.explain(RuntimeError("x"), value),
    ):
        holds(call)


@given(value=HOSTILE)
def test_property_secret_and_doctor_and_streaming(own_secrets, value):
    secret = holds(lambda: Secret(value), "value")
    if isinstance(secret, Secret):
        assert "****" in repr(secret)
    holds(lambda: doctor.probe_provider(value), "name")
    holds(lambda: _streaming.collect_stream(value), "stream")


@pytest.mark.parametrize("name", ["reply", "language", "code", "tests", "timeout", "insert"])
@given(value=HOSTILE)
def test_property_code_helpers(name, value):
    calls = {
        "reply": (lambda: code.extract_code(value), "reply"),
        "language": (lambda: code.extract_code("```py\nx = 1\n```", value), "language"),
        "code": (lambda: code.check_syntax(value), "code"),
        "tests": (lambda: code.run_tests("x = 1", value, timeout=0.1), "tests"),
        "timeout": (lambda: code.run_tests("x = 1", "assert x == 1", timeout=value), "timeout"),
        "insert": (lambda: code.insert_next_cell(value), "code"),
    }
    call, label = calls[name]
    holds(call, label)


@pytest.mark.parametrize(
    ("behaviour", "code", "verdict"),
    [
        ("status", 1, "it FAILS."),
        ("ok", 0, "it works."),
    ],
)
def test_doctor_exits_non_zero_when_the_configured_provider_fails(
    server, monkeypatch, capsys, behaviour, code, verdict
):
    server.behave(behaviour, status=503)
    monkeypatch.setenv("AKASH_NB_PROVIDER", "openai-compatible")
    monkeypatch.setenv("AKASH_NB_BASE_URL", server.url)
    monkeypatch.setenv("CI", "1")
    # Before: 0 whenever any provider worked (the replay recordings always do), whatever the lessons use.
    assert cli.main(["doctor"]) == code
    out = capsys.readouterr().out
    assert out.rstrip().endswith(
        "The lessons use openai-compatible (environment variable AKASH_NB_PROVIDER): " + verdict
    )
