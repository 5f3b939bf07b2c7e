"""`akash_nb.show_http`: the request that went out, the JSON that came back, and the same request as curl,
from the SDK's own `with_raw_response`, against a real loopback server; the key never shown."""

from __future__ import annotations

import json
import shlex

import openai
import pytest
from faultserver import FaultServer

import akash_nb
from akash_nb._core.exceptions import AkashNBError

KEY = "akml-" + "wirewirewirewire1234"
MESSAGES = [{"role": "user", "content": "Once upon a time, in a land far, far away"}]


@pytest.fixture
def raw():
    with FaultServer() as server:
        client = openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
        yield client.chat.completions.with_raw_response.create(
            model="fault-model", messages=MESSAGES, max_tokens=30
        )


def test_the_wire_shows_the_request_json_and_the_response_json(raw):
    wire = akash_nb.show_http(raw)
    assert wire.method == "POST" and wire.url.endswith("/v1/chat/completions")
    assert wire.request == {"model": "fault-model", "messages": MESSAGES, "max_tokens": 30}
    assert wire.status == 200 and wire.content_type == "application/json"
    assert wire.response["choices"][0]["message"]["content"] == raw.parse().choices[0].message.content
    text = str(wire)
    assert '"max_tokens": 30' in text and '"finish_reason"' in text


def test_the_curl_command_sends_the_same_request(raw):
    wire = akash_nb.show_http(raw)
    words = shlex.split(wire.curl().replace("\\\n", " "))
    assert words[:2] == ["curl", wire.url]
    assert json.loads(words[words.index("-d") + 1]) == wire.request
    assert "Authorization: Bearer $API_KEY" in words


def test_the_key_is_never_shown(raw):
    bundle = akash_nb.show_http(raw)._repr_mimebundle_()
    for shown in (*bundle.values(), repr(akash_nb.show_http(raw))):
        assert KEY not in shown and "wirewire" not in shown
    assert "Authorization: Bearer akml-****" in bundle["text/plain"]


def test_a_parsed_response_is_a_sentence_naming_with_raw_response(raw):
    with pytest.raises(AkashNBError) as caught:
        akash_nb.show_http(raw.parse())
    assert "with_raw_response" in caught.value.sentence
