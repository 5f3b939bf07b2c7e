"""`akash_nb.client()`: a plain openai.OpenAI for the configured provider, an honest model choice, and a
banner that says who answers (never the key). Uses the session's real embedded server; nothing here talks
to a non-loopback address (the retired host is only looked up, and only where that lookup fails)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import openai
import pytest
from faultserver import closed_port
from openai.types.chat import ChatCompletion
from project import RECORDINGS

import akash_nb
from akash_nb import _render
from akash_nb._clients import choose_model, client
from akash_nb._core import connection as connections
from akash_nb._core.connection import connection_for, resolve_model, served_models
from akash_nb._core.exceptions import AkashNBError, ConfigError
from akash_nb._core.providers import LOCAL_MODEL_NAME
from akash_nb._engine import embedded

GUIDE_MODEL = "Meta-Llama-3-1-8B-Instruct-FP8"
AKML = "akml-" + "0123456789abcdef"


# --- the embedded model -----------------------------------------------------------------------------------


@pytest.mark.live
def test_client_is_a_plain_openai_client_for_the_embedded_server(local_env):
    openai_client = client(show=False)
    assert type(openai_client) is openai.OpenAI
    assert urlparse(str(openai_client.base_url)).hostname == "127.0.0.1"
    conn = connection_for(openai_client)
    assert conn.provider.name == "local"
    assert conn.base_url == embedded.running().base_url
    assert "never shown" in conn.key_source
    assert served_models(openai_client) == [LOCAL_MODEL_NAME]


@pytest.mark.live
def test_the_guides_model_is_substituted_and_the_note_names_both(local_env):
    openai_client = client(show=False)
    assert choose_model(openai_client, GUIDE_MODEL, show=False) == LOCAL_MODEL_NAME
    choice = resolve_model(openai_client, GUIDE_MODEL)
    assert choice.substituted
    assert (choice.requested, choice.model) == (GUIDE_MODEL, LOCAL_MODEL_NAME)
    assert choice.served == (LOCAL_MODEL_NAME,)
    note = _render.model_choice_text(choice, connection_for(openai_client))
    assert GUIDE_MODEL in note and LOCAL_MODEL_NAME in note


@pytest.mark.live
def test_a_served_model_is_used_as_asked(local_env):
    choice = resolve_model(client(show=False), LOCAL_MODEL_NAME)
    assert not choice.substituted and choice.reason == "served"


@pytest.mark.live
def test_with_no_model_asked_for_the_providers_fallback_is_used(local_env):
    choice = resolve_model(client(show=False))
    assert choice.model == LOCAL_MODEL_NAME and not choice.substituted


@pytest.mark.live
def test_a_configured_model_that_is_served_wins(local_env, monkeypatch):
    monkeypatch.setenv("AKASH_NB_MODEL", LOCAL_MODEL_NAME)
    choice = resolve_model(client(show=False), GUIDE_MODEL)
    assert choice.model == LOCAL_MODEL_NAME and choice.reason == "configured"


@pytest.mark.live
def test_a_configured_model_that_is_not_served_is_a_sentence_listing_the_served_ones(local_env, monkeypatch):
    monkeypatch.setenv("AKASH_NB_MODEL", "gpt-4o")
    openai_client = client(show=False)
    with pytest.raises(ConfigError) as caught:
        choose_model(openai_client, GUIDE_MODEL, show=False)
    sentence = caught.value.sentence
    assert "'gpt-4o'" in sentence and LOCAL_MODEL_NAME in sentence
    assert "\n" not in sentence and sentence.endswith(".")


@pytest.mark.live
def test_a_response_names_the_model_that_really_answered(local_env):
    """The guide asks for a model the embedded server does not have; the response names the one it has."""
    openai_client = client(show=False)
    response = openai_client.chat.completions.create(
        model=GUIDE_MODEL,  # the guide's call, written as the guide writes it
        messages=[{"role": "user", "content": "Once upon a time, in a land far, far away"}],
        max_tokens=5,
    )
    assert response.model == LOCAL_MODEL_NAME
    assert response.choices[0].message.content


@pytest.mark.live
def test_the_banner_says_provider_url_model_and_key_source_but_never_the_key(local_env, monkeypatch):
    monkeypatch.setenv("AKASH_NB_MODEL", LOCAL_MODEL_NAME)
    openai_client = client(show=False)
    text = _render.connection_text(connection_for(openai_client))
    server = embedded.running()
    for part in ("local", server.base_url, LOCAL_MODEL_NAME, connection_for(openai_client).key_source):
        assert part in text
    assert server.key.reveal() not in text
    assert openai_client.api_key == server.key.reveal()  # the key is in the client, only there


# --- remote providers, without traffic ----------------------------------------------------------------------


def test_a_remote_client_is_made_without_contacting_anyone(tmp_path, monkeypatch):
    monkeypatch.setenv("AKASH_NB_STATE_DIR", str(tmp_path / "state"))
    openai_client = client("akashml", api_key=AKML, show=False)
    assert str(openai_client.base_url).rstrip("/") == "https://api.akashml.com/v1"
    text = _render.connection_text(connection_for(openai_client))
    assert "akashml" in text and "https://api.akashml.com/v1" in text and "the api_key= argument" in text
    assert AKML not in text and AKML not in repr(connection_for(openai_client))
    assert not list((tmp_path / "state").glob("server-*.json"))  # no embedded server started for it


def test_the_retired_akash_chat_api_answers_with_the_retirement_sentence():
    """The guide's host no longer resolves: exactly what a learner with an old key sees."""
    try:
        socket.getaddrinfo("chatapi.akash.network", 443)
    except socket.gaierror:
        pass
    else:
        pytest.skip("chatapi.akash.network resolves here; this test sends nothing off this machine")
    openai_client = client("akash-chat", api_key="sk-0123456789", show=False)
    started = time.monotonic()
    with pytest.raises(AkashNBError) as caught:
        served_models(openai_client)
    assert time.monotonic() - started < 5  # no retries: a retired service does not come back
    assert "retired on 2025-11-21" in caught.value.sentence and "AkashML" in caught.value.sentence


def test_akash_chat_unreachable_at_any_url_is_the_retirement_sentence():
    url = f"http://127.0.0.1:{closed_port()}/api/v1"
    openai_client = client("akash-chat", base_url=url, api_key="sk-0123456789", show=False)
    with pytest.raises(AkashNBError) as caught:
        served_models(openai_client)
    assert "retired on 2025-11-21" in caught.value.sentence and "AkashML" in caught.value.sentence
    assert openai_client.max_retries == 0


def test_an_unreachable_server_is_a_sentence_not_a_traceback():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    openai_client = client(base_url=url, max_retries=0, show=False)
    with pytest.raises(AkashNBError) as caught:
        served_models(openai_client)
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)
    assert "127.0.0.1" in caught.value.sentence


def test_connections_are_forgotten_with_their_clients():
    openai_client = client(base_url="http://127.0.0.1:9/v1", show=False)
    assert openai_client in connections._by_client
    count = len(connections._by_client)
    del openai_client
    assert len(connections._by_client) == count - 1


@pytest.mark.live
def test_last_latency_times_the_last_request_without_touching_the_call(local_env):
    made = akash_nb.client(show=False)
    assert akash_nb.last_latency(made) is None, "nothing sent yet"
    model = akash_nb.choose_model(made, show=False)
    made.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=24, temperature=0
    )
    long_answer = akash_nb.last_latency(made)
    made.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=1, temperature=0
    )
    one_token = akash_nb.last_latency(made)
    assert 0 < one_token < long_answer, "it measures each request, and a longer answer takes longer"


@pytest.mark.live
def test_footer_and_error_name_the_client_that_answered_not_the_last_one_made(local_env):
    answering = akash_nb.client(show=False)
    closed = akash_nb.client(
        provider="openai-compatible", base_url="http://127.0.0.1:9/v1", show=False, max_retries=0
    )
    response = answering.chat.completions.create(
        model=akash_nb.choose_model(answering, show=False),
        max_tokens=2,
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert " via local" in _render.footer(response, answering)
    with pytest.raises(openai.APIConnectionError) as caught:
        closed.models.list()
    later = akash_nb.client(show=False)  # the newest client is not the one that failed
    assert later is not closed
    assert "http://127.0.0.1:9/v1" in _render.error_sentence(caught.value).sentence


# --- the guide's own client block: a plain openai.OpenAI from connection_values() ------------------------


@pytest.fixture
def replay_values(monkeypatch):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "replay")
    monkeypatch.setenv("AKASH_NB_RECORDINGS", str(RECORDINGS))
    return akash_nb.connection_values(show=False)


def test_connection_values_are_the_two_values_of_the_guides_client_and_the_key_is_masked(replay_values):
    api_key, base_url = replay_values
    assert isinstance(api_key, str) and base_url.startswith("http://127.0.0.1:")
    assert repr(api_key) == "Secret(****)" and repr(replay_values).count("Secret(****)") == 1
    plain = openai.OpenAI(api_key=api_key, base_url=base_url)
    assert connection_for(plain).provider.name == "replay"
    assert served_models(plain) == [LOCAL_MODEL_NAME]


def test_a_plain_client_gets_its_provider_in_the_footer_and_says_what_needs_akash_nb_client(replay_values):
    plain = openai.OpenAI(api_key=replay_values[0], base_url=replay_values[1])
    response = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": LOCAL_MODEL_NAME,
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}
            ],
        }
    )
    line = _render.footer(response, plain)
    assert line == f"{LOCAL_MODEL_NAME} via replay · finish_reason=stop"
    # a time the learner measured is shown for a real provider only: replay's own 1.5 s is no measurement
    assert _render.footer(response, plain, seconds=1.5).endswith("· time not measured (replay)")
    with pytest.raises(ConfigError) as caught:
        akash_nb.last_latency(plain)
    assert "akash_nb.client()" in caught.value.sentence and "perf_counter" in caught.value.sentence


def test_an_error_from_a_plain_client_names_its_url():
    port = closed_port()
    api_key, base_url = akash_nb.connection_values(
        "openai-compatible", base_url=f"http://127.0.0.1:{port}/v1", show=False
    )
    plain = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)
    with pytest.raises(openai.APIConnectionError) as caught:
        plain.models.list()
    sentence = _render.error_sentence(caught.value).sentence
    assert f"Nothing is listening at http://127.0.0.1:{port}/v1" in sentence


def test_a_client_akash_nb_never_saw_is_a_sentence_naming_connection_values():
    stranger = openai.OpenAI(api_key="x", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(ConfigError) as caught:
        connection_for(stranger)
    assert "akash_nb.connection_values()" in caught.value.sentence
