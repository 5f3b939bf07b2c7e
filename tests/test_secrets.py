"""A key never shows: not in reprs, not in errors, not in files others can read, not on the network.
A Secret holds a key so that printing, formatting or pickling it cannot leak the key.

The embedded server listens on 127.0.0.1 only and answers nobody without its key.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import pickle
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import openai
import psutil
import pytest
from faultserver import FaultServer, connection_to

import akash_nb
from akash_nb._core import config
from akash_nb._core.api_key import Secret
from akash_nb._core.exceptions import AkashNBError, ConfigError
from akash_nb._core.failures import explain
from akash_nb._core.providers import LOCAL_MODEL_NAME
from akash_nb._engine import embedded

AKML_KEY = "akml-" + "SECRETabcdef0123456789"
SK_KEY = "sk-" + "SECRETabcdef0123456789"


def shows_no_key(text: str, key: str) -> bool:
    body = key.split("-", 1)[1]
    return key not in text and body not in text and body[-6:] not in text


# --- objects --------------------------------------------------------------------------------------------

KEY = "akml-" + "0123456789abcdef"


@pytest.mark.parametrize(
    ("key", "part"),
    [(KEY, "0123456789"), (AKML_KEY, "SECRET"), (SK_KEY, "SECRET"), ("plainSECRET0123456789", "SECRET")],
)
@pytest.mark.parametrize(
    "show",
    [
        repr,
        str,
        format,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: f"{s:>40}",
        lambda s: "%s" % s,  # noqa: UP031 (old-style formatting must be masked too)
        "{}".format,
        lambda s: str([s]),
        lambda s: str({"key": s}),
    ],
)
def test_every_way_of_printing_a_secret_is_masked(show, key, part):
    text = show(Secret(key))
    assert key not in text
    assert part not in text
    assert "****" in text


@pytest.mark.parametrize("key", [KEY, AKML_KEY, SK_KEY, "plainSECRET0123456789"])
def test_reveal_is_the_only_way_to_the_value(key):
    assert Secret(key).reveal() == key


def test_the_mask_keeps_a_known_prefix_only():
    assert repr(Secret(KEY)) == "Secret(akml-****)"
    assert repr(Secret("sk-0123456789")) == "Secret(sk-****)"
    assert repr(Secret("0123456789")) == "Secret(****)"


def test_a_secret_refuses_to_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(KEY))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(AKML_KEY))


def test_equality_compares_values_and_only_with_secrets():
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) != Secret(KEY + "x")
    assert Secret(KEY) != KEY
    assert hash(Secret(KEY)) == hash(Secret(KEY))
    assert Secret("ключ") == Secret("ключ")  # not only ASCII


def test_a_secret_has_no_instance_dict_to_dump():
    with pytest.raises(TypeError):
        vars(Secret(KEY))


def test_settings_never_show_the_key():
    settings = config.resolve("akashml", api_key=AKML_KEY, environ={}, dotenv_path=None)
    assert settings.api_key.reveal() == AKML_KEY
    for text in (repr(settings), str(settings), repr(settings.sources)):
        assert shows_no_key(text, AKML_KEY)


def test_a_connection_holds_and_shows_no_key(fault_server_url):
    client = akash_nb.client("openai-compatible", base_url=fault_server_url, api_key=SK_KEY, show=False)
    conn = akash_nb.connection_for(client)
    assert shows_no_key(repr(conn), SK_KEY) and shows_no_key(conn.describe(), SK_KEY)
    assert not [name for name in vars(conn) if "key" in name and name != "key_source"]


@pytest.fixture
def fault_server_url():
    with FaultServer() as server:
        yield server.url


@pytest.mark.live
def test_the_embedded_server_record_shows_no_key(local_env):
    server = embedded.ensure_server()
    assert server.key.reveal() not in repr(server)


# --- errors raised with a bad key ----------------------------------------------------------------------


def test_a_key_given_to_the_wrong_provider_is_refused_without_repeating_it():
    with pytest.raises(ConfigError) as caught:
        config.resolve("akash-chat", api_key=AKML_KEY, environ={}, dotenv_path=None)
    assert shows_no_key(str(caught.value), AKML_KEY) and shows_no_key(repr(caught.value), AKML_KEY)


def test_a_key_with_a_line_break_inside_is_refused_without_repeating_it():
    with pytest.raises(ConfigError) as caught:
        config.resolve("akashml", api_key="akml-SECRET abc\ndef", environ={}, dotenv_path=None)
    assert "SECRET" not in str(caught.value)


@pytest.mark.live
def test_a_wrong_key_to_the_embedded_server_gets_the_401_sentence_without_the_key(local_env):
    server = embedded.ensure_server()
    client = openai.OpenAI(base_url=server.base_url, api_key=SK_KEY, max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    error = explain(caught.value, connection_to(server.base_url, "local", "embedded model"))
    assert isinstance(error, AkashNBError) and "did not accept the key (401)" in error.sentence
    assert shows_no_key(str(error), SK_KEY) and shows_no_key(repr(error), SK_KEY)
    assert server.key.reveal() not in str(error)


# --- files ----------------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.live
def test_the_server_state_file_lock_and_log_are_private(state_dir):
    server = embedded.ensure_server()
    state = embedded.state_file(server.config)
    assert mode(state_dir) == 0o700  # the folder is private too
    assert mode(state) == 0o600
    assert mode(state_dir / f"server-{server.config}.lock") == 0o600
    record = json.loads(state.read_text())
    assert record["key"] == server.key.reveal()  # it is the one place the key lives
    assert record["pid"] == server.pid
    log = Path(server.log)  # created before llama-server starts (llama_server.launch), so it is always there
    assert mode(log) == 0o600
    assert server.key.reveal() not in log.read_text(errors="replace")


@pytest.mark.live
def test_the_key_is_on_no_command_line_in_no_environment_and_its_file_is_gone(state_dir, monkeypatch):
    monkeypatch.setenv("LLAMA_API_KEY", "a-key-from-the-users-shell")  # llama-server would read it
    server = embedded.ensure_server()
    key = server.key.reveal().encode()
    # /proc/PID/cmdline is readable by every user on the machine; environ only by the owner.
    assert key not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{server.pid}/environ").read_bytes()
    assert key not in environ and b"API_KEY" not in environ  # no provider key is inherited either
    assert list(state_dir.glob("*.key")) == []  # read by the server at start, then deleted
    assert status_of(server.base_url + "/models", key="a-key-from-the-users-shell") == 401


# --- the embedded server's door ------------------------------------------------------------------------


def status_of(url: str, key: str | None = None, data: bytes | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


CHAT = json.dumps(
    {"model": LOCAL_MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
).encode()


@pytest.mark.live
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", "Basic Zm9vOmJhcg=="])
def test_the_embedded_server_refuses_requests_without_its_key(local_env, authorization):
    server = embedded.ensure_server()
    headers = {"Authorization": authorization} if authorization else {}
    for path, data in (
        ("/models", None),
        ("/chat/completions", b'{"messages": []}'),
        ("/chat/completions", CHAT),
    ):
        request = urllib.request.Request(
            server.base_url + path, data=data, headers={**headers, "Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 401


@pytest.mark.live
def test_the_embedded_server_answers_its_own_key(local_env):
    server = embedded.ensure_server()
    assert status_of(server.base_url + "/models", key=server.key.reveal()) == 200
    assert status_of(server.health_url) == 200  # llama-server's /health tells only that it is up


def _listening(pid: int) -> list:
    process = psutil.Process(pid)
    sockets = [c for p in (process, *process.children(recursive=True)) for c in p.net_connections("inet")]
    return [c for c in sockets if c.status == psutil.CONN_LISTEN]


@pytest.mark.live
def test_the_embedded_server_listens_on_loopback_only(local_env):
    server = embedded.ensure_server()
    listening = _listening(server.pid)
    assert listening, "the server process has no listening socket"
    assert {c.laddr.port for c in listening} == {server.port}
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def _own_addresses() -> list[str]:
    """This machine's own non-loopback addresses (connecting to them never leaves the machine)."""
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not ipaddress.ip_address(address.address).is_loopback:
                found.append(address.address)
    return found


@pytest.mark.live
def test_the_embedded_server_cannot_be_reached_on_this_machines_other_addresses(local_env):
    server = embedded.ensure_server()
    addresses = _own_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    for address in addresses:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            code = s.connect_ex((address, server.port))
        assert code in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH), (address, code)
