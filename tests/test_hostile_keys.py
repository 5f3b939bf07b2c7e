"""Secrets by value: a server that echoes the key it received, in every error body field and in headers,
never puts it on the learner's screen, whatever the key's shape and whichever provider it belongs to.

Checked wherever text reaches the user: the error sentence (and its str and repr), a Conversation's error,
the panel and ChatBox, show_error's plain-text output, doctor's table, and the plain-Python error line.
"""

from __future__ import annotations

import asyncio
import secrets
import sys

import openai
import pytest
from processes import environment_without, run
from project import ROOT

import akash_nb
from akash_nb import doctor
from akash_nb._conversation import Conversation
from akash_nb._core.api_key import Secret
from akash_nb._core.exceptions import AkashNBError
from akash_nb._widgets import ChatBox

pytestmark = pytest.mark.faults

KEYS = {  # provider -> a key of the shape it uses (the class and embedded servers' keys have no prefix)
    "akashml": "akml-" + "Zq7" + "x" * 20 + "Echo",
    "akash-chat": "sk-" + "Rw5" + "y" * 20 + "Back",
    "openai-compatible": secrets.token_urlsafe(24),
}


HI = [{"role": "user", "content": "Hi"}]


def shows_no_key(text: str, key: str) -> None:
    # The part after a provider's prefix (a random key such as token_urlsafe's may hold "-" anywhere).
    body = key.removeprefix("akml-").removeprefix("sk-")
    assert key not in text and body not in text and key[-4:] not in text, text


def client_for(provider: str, server) -> openai.OpenAI:
    return akash_nb.client(provider, base_url=server.url, api_key=KEYS[provider], show=False, max_retries=0)


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
@pytest.mark.parametrize("provider", list(KEYS))
def test_an_echoed_key_is_masked_in_every_error_of_every_provider(server, provider, status, capsys):
    server.behave("echo", status=status)
    client = client_for(provider, server)
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(client)
    assert server.requests[-1][2]["authorization"] == f"Bearer {KEYS[provider]}"  # it really was sent
    for text in (caught.value.sentence, str(caught.value), repr(caught.value)):
        shows_no_key(text, KEYS[provider])
    with pytest.raises(openai.APIStatusError) as raw:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    akash_nb.show_error(raw.value)  # plain Python: printed
    shows_no_key(capsys.readouterr().out, KEYS[provider])


@pytest.mark.parametrize("provider", list(KEYS))
def test_an_echoed_key_is_masked_in_the_panel_chatbox_and_conversation(server, provider):
    server.behave("ok")
    client = client_for(provider, server)
    panel = akash_nb.panel(client, "Hi")
    chat = Conversation(client, "fault-model")
    box = ChatBox(Conversation(client, "fault-model"))
    server.behave("echo", status=400)
    panel.run()
    with pytest.raises(AkashNBError) as caught:
        chat.send("Hi")
    box.send("Hi")
    for text in (repr(panel), panel.answer.value, caught.value.sentence, repr(box), box.status.value):
        shows_no_key(text, KEYS[provider])


def test_an_echoed_key_is_masked_in_doctor(server):
    server.behave("echo", status=400)
    row = doctor.probe(client_for("openai-compatible", server))
    assert not row.ok
    shows_no_key(doctor.format_table([row]), KEYS["openai-compatible"])


async def asked(client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(model="m", messages=HI)


def made_by_hand(call: str, url: str, key: str) -> None:
    """A request from a plain openai client, made as a learner's own script makes it."""
    if call == "async":
        asyncio.run(asked(openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0)))
    plain = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
    if call == "stream":
        plain.chat.completions.create(model="m", messages=HI, stream=True)
    plain.models.list()


@pytest.mark.parametrize("call", ["list", "stream", "async"])
def test_a_plain_client_made_by_hand_is_masked_too(server, call):
    # Never given to akash_nb: only the request carried it (and from openai 3.58 the exception's copy of the
    # request no longer does, so the key is found from the client the exception came out of).
    key = secrets.token_urlsafe(24)
    server.behave("echo", status=422)
    with pytest.raises(openai.APIStatusError) as caught:
        made_by_hand(call, server.url, key)
    assert server.requests[-1][2]["authorization"] == f"Bearer {key}"  # it really was sent
    shows_no_key(akash_nb.explain(caught.value, "The server").sentence, key)


def test_the_class_server_key_is_masked_once_it_is_a_secret():
    key = Secret(secrets.token_urlsafe(24))  # what local.share() (_engine/class_server.py) makes its key
    error = AkashNBError(f"llama-server said: invalid api key {key.reveal()}.")
    shows_no_key(error.sentence, key.reveal())
    shows_no_key(akash_nb._core.api_key.mask(f"log line: Bearer {key.reveal()}"), key.reveal())


def test_plain_python_shows_the_sentence_and_the_traceback_only_on_request(server, tmp_path):
    server.behave("echo", status=400)
    key = KEYS["openai-compatible"]
    script = tmp_path / "lesson.py"
    script.write_text(
        "import akash_nb\n"
        f"client = akash_nb.client('openai-compatible', base_url={server.url!r}, "
        f"api_key={key!r}, max_retries=0)\n"
        "client.chat.completions.create(model='m',\n"
        "                               messages=[{'role': 'user', 'content': 'Hi'}])\n"
    )
    env = environment_without("AKASH", "CI") | {"PYTHONPATH": str(ROOT)}
    done = run([sys.executable, str(script)], env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("Provider: openai-compatible — your OpenAI-compatible server\n")
    assert "text/plain" not in done.stdout and "<div" not in done.stdout  # no raw mime bundles
    assert done.stderr.startswith(
        "AkashNBError: your OpenAI-compatible server rejected the request as malformed (400): Invalid key"
    )
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "(full traceback: AKASH_NB_TRACEBACK=1)" in done.stderr
    shows_no_key(done.stdout + done.stderr, key)
    full = run(
        [sys.executable, str(script)], timeout=60, env={**env, "AKASH_NB_TRACEBACK": "1"}, cwd=tmp_path
    )
    assert "Traceback (most recent call last)" in full.stderr and "BadRequestError" in full.stderr
