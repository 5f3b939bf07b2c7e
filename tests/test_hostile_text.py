"""Server text is untrusted: a message, a model id or a header a server sends reaches the screen bounded,
with its control characters and terminal escapes made visible and on one line; a URL's user-info is a
secret; and a key a server echoes is masked whether or not anything was shown (`show=False`).

Every case talks to a real loopback server (tests/faultserver.py)."""

from __future__ import annotations

import secrets
import time

import openai
import pytest
from faultserver import MODEL

import akash_nb
from akash_nb import _render, doctor
from akash_nb._core import failures, untrusted
from akash_nb._core.exceptions import AkashNBError, ConfigError
from akash_nb._engine import class_server, join

pytestmark = pytest.mark.faults

HOSTILE_ID = "evil\x1b]0;pwned\x07\x1b[2J\u202eid\r\nURL: http://attacker.example/v1\x08"
RAW = ("\x1b", "\x07", "\u202e", "\r", "\x08")  # none of these may reach the screen as itself


def raw_free(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)
    assert "\nURL: http://attacker" not in text, text  # no forged line of our own output


def models_body(*ids: str) -> dict:
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": 0, "owned_by": "x"} for i in ids],
    }


def sdk_client(server, **options) -> openai.OpenAI:
    return akash_nb.client(base_url=server.url, api_key="k" * 24, show=False, max_retries=0, **options)


# --- rule 1: bounded, neutralised, one line ---------------------------------------------------------------


def test_a_50_mb_400_message_gives_a_bounded_sentence(server):
    server.behave("status", status=400, body={"error": {"message": "x" * 50_000_000, "type": "bad"}})
    started = time.perf_counter()
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(sdk_client(server))
    sentence = caught.value.sentence
    assert len(sentence) < 600, len(sentence)
    assert f"({50_000_000 - untrusted.QUOTE_LIMIT} more characters)" in sentence
    assert len(str(caught.value)) < 600 and len(repr(caught.value)) < 800
    assert time.perf_counter() - started < 10


def test_an_escape_sequence_or_newline_in_a_message_does_not_reach_output_raw(server, capsys):
    server.behave("status", status=400, body={"error": {"message": HOSTILE_ID, "type": "bad"}})
    client = sdk_client(server)
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(client)
    raw_free(caught.value.sentence)
    assert "\\x1b]0;pwned" in caught.value.sentence  # shown, as an escape
    with pytest.raises(openai.APIStatusError) as sdk:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    akash_nb.show_error(sdk.value)
    raw_free(capsys.readouterr().out)


def test_an_unknown_error_with_hostile_text_gives_a_bounded_one_line_sentence():
    sentence = failures.explain(ValueError(HOSTILE_ID * 1000)).sentence
    raw_free(sentence)
    assert len(sentence) < 600


def test_a_hostile_content_type_and_retry_after_are_not_quoted_raw(server):
    server.behave("html")
    with pytest.raises(AkashNBError):  # the ordinary case still names the content type
        akash_nb.served_models(sdk_client(server))
    hostile = "text/" + "h\x1b[2J" * 5000
    server.behave("status", status=200, body={}, headers={"Content-Type": hostile})
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(sdk_client(server))
    raw_free(caught.value.sentence)
    assert len(caught.value.sentence) < 600
    server.behave("status", status=429, headers={"Retry-After": "9" * 5000})
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(sdk_client(server))
    assert len(caught.value.sentence) < 400, caught.value.sentence


def test_an_escape_sequence_or_newline_in_a_model_id_does_not_reach_output_raw(server):
    server.behave("status", status=200, body=models_body(HOSTILE_ID, MODEL))
    with pytest.raises(ConfigError) as caught:
        akash_nb.choose_model(sdk_client(server, model="not-served"), show=False)
    raw_free(caught.value.sentence)
    client = sdk_client(server)
    choice = akash_nb._core.connection.resolve_model(client, "asked-for")
    raw_free(_render.model_choice_text(choice, akash_nb._core.connection.connection_for(client)))
    raw_free(_render.footer_text(HOSTILE_ID, "local", HOSTILE_ID, None))


def test_10_000_model_ids_give_and_n_more(server, tmp_path):
    ids = [f"model-{n:05d}" for n in range(10_000)]
    server.behave("status", status=200, body=models_body(*ids))
    with pytest.raises(ConfigError) as caught:
        akash_nb.choose_model(sdk_client(server, model="not-served"), show=False)
    assert f"and {10_000 - untrusted.LIST_LIMIT} more" in caught.value.sentence
    assert len(caught.value.sentence) < 800
    client = sdk_client(server)
    choice = akash_nb._core.connection.resolve_model(client, "asked-for")
    shown = _render.model_choice_text(choice, akash_nb._core.connection.connection_for(client))
    assert "more" in shown and len(shown) < 800
    said = join.join(server.url, "k" * 22, tmp_path / ".env")
    assert f"and {10_000 - untrusted.LIST_LIMIT} more" in said and len(said) < 800


def test_join_quotes_hostile_model_ids_on_one_line(server, tmp_path):
    server.behave("status", status=200, body=models_body(HOSTILE_ID))
    said = join.join(server.url, "k" * 22, tmp_path / ".env")
    raw_free(said)


def test_doctor_rows_show_hostile_ids_on_one_line(server):
    server.behave("status", status=200, body=models_body(*[HOSTILE_ID] * 50))
    row = doctor.probe(sdk_client(server))  # the completion fails (a model list is no completion): a sentence
    raw_free(doctor.format_table([row]))
    server.behave("ok")
    row = doctor.probe(sdk_client(server))
    assert row.ok


def test_a_class_servers_status_line_survives_hostile_metrics():
    values = class_server.metrics_values("llamacpp:requests_deferred inf\nllamacpp:n_decode_total nan\n")
    assert values == {}


# --- rule 2: a URL's user-info is a secret ------------------------------------------------------------------


def test_a_base_url_with_user_info_is_refused_with_the_url_masked(server):
    server.behave("ok")
    secret = secrets.token_urlsafe(12)
    url = server.url.replace("http://", f"http://learner:{secret}@")
    with pytest.raises(ConfigError) as caught:
        akash_nb.client(base_url=url, api_key="k" * 24, show=False)
    assert secret not in caught.value.sentence and "****@127.0.0.1" in caught.value.sentence
    assert server.hits == 0  # nothing was sent: the Basic credentials never replaced the Bearer key
    with pytest.raises(ConfigError) as caught:
        join.join(url, "k" * 22)
    assert secret not in caught.value.sentence and "****@" in caught.value.sentence


def test_a_url_shown_anywhere_has_no_user_info():
    secret = secrets.token_urlsafe(12)
    assert secret not in untrusted.shown_url(f"http://u:{secret}@host:1/v1")
    conn = akash_nb._core.connection.Connection(
        akash_nb._core.providers.PROVIDERS["openai-compatible"], f"http://u:{secret}@host:1/v1", None, "test"
    )
    assert secret not in _render.connection_text(conn)
    refused = failures.explain(
        openai.APIConnectionError(request=__import__("httpx2").Request("GET", conn.base_url)), conn
    )
    assert secret not in refused.sentence


# --- rule 6: keys masked whatever `show` says ---------------------------------------------------------------


def test_client_show_false_masks_an_echoed_key_in_the_sdks_own_exception(server, capsys):
    key = secrets.token_urlsafe(24)
    server.behave("echo", status=401)
    client = akash_nb.client(base_url=server.url, api_key=key, show=False, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert server.requests[-1][2]["authorization"] == f"Bearer {key}"  # it was sent, and echoed
    for text in (str(caught.value), repr(caught.value), repr(caught.value.body), caught.value.response.text):
        assert key not in text and key[-4:] not in text, text
    akash_nb.show_error(caught.value)
    assert key not in capsys.readouterr().out
