"""akash_nb._core.compat, the one place the package uses a library's private internals: each of its functions
does what the package needs of it against the installed openai SDK, httpx2 and IPython, talking to a real
loopback server where there is one. A library upgrade that moves or changes one of these internals fails
here, naming it, before it shows up as a lesson that misbehaves."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys

import httpx2
import openai
import pytest
from faultserver import FaultServer
from ipykernel.zmqshell import ZMQInteractiveShell
from IPython.core.interactiveshell import InteractiveShell
from project import ROOT

from akash_nb._core import compat

PACKAGE_FILES = {
    ".".join(path.relative_to(ROOT / "akash_nb").with_suffix("").parts): path
    for path in sorted((ROOT / "akash_nb").rglob("*.py"))
}
MODULES = {name.rpartition(".")[2] for name in PACKAGE_FILES}  # the names a module is imported as

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server():
    with FaultServer() as fault:
        yield fault


def sdk_client(server: FaultServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="sk-" + "x" * 20, max_retries=0, timeout=5)


def test_importing_compat_loads_none_of_the_libraries_it_reaches_into():
    code = (
        "import akash_nb._core.compat, sys; print(sorted({'openai', 'httpx2', 'IPython'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_watch_sse_lines_sees_every_line_of_a_real_stream_unknown_fields_too(server):
    server.behave("error-field")
    seen: list[str] = []
    stream = sdk_client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    compat.watch_sse_lines(stream, seen.append)
    assert list(stream) == []  # the SDK's parser skips the unknown field: no chunk at all
    (error,) = [line for line in seen if line.startswith("error:")]
    assert json.loads(error.removeprefix("error:"))["type"] == "exceed_context_size_error"


def test_watch_sse_lines_leaves_the_sdks_chunks_as_they_were(server):
    server.behave("ok")
    seen: list[str] = []
    stream = sdk_client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    compat.watch_sse_lines(stream, seen.append)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text  # the chunks still parse, each one a data line the watcher saw first
    data = [line for line in seen if line.startswith("data:")]
    assert len(data) >= 2 and data[-1] == "data: [DONE]"


def test_stream_client_is_the_client_that_made_the_stream(server):
    server.behave("ok")
    client = sdk_client(server)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    try:
        assert compat.stream_client(stream) is client
    finally:
        stream.close()
    assert compat.stream_client(client) is None and compat.stream_client(None) is None


def test_is_raw_response_knows_a_with_raw_response_result_and_nothing_else(server):
    server.behave("ok")
    raw = sdk_client(server).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert compat.is_raw_response(raw)
    # what akash_nb._wire reads of it
    assert isinstance(raw.http_request, httpx2.Request) and isinstance(raw.http_response, httpx2.Response)
    assert json.loads(raw.http_request.content)["messages"] == MESSAGES
    completion = raw.parse()
    assert not compat.is_raw_response(completion) and not compat.is_raw_response(raw.http_response)


def test_replace_body_in_a_response_hook_is_the_body_the_sdk_reads(server):
    """As errors.mask_error_body uses it: a hook on a real failed answer replaces its read body, and the
    SDK's exception is built from the new one (text and JSON alike), even after `.text` was read."""
    server.behave("status", status=402)
    swapped = {"error": {"message": "replaced", "type": "payment_required"}}

    def hook(response: httpx2.Response) -> None:
        response.read()
        assert "Insufficient credits" in response.text  # decoded once, and cached by httpx2
        compat.replace_body(response, json.dumps(swapped).encode())

    http = httpx2.Client(event_hooks={"response": [hook]}, timeout=5)
    client = openai.OpenAI(base_url=server.url, api_key="sk-" + "x" * 20, max_retries=0, http_client=http)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    response = caught.value.response
    assert response.content == json.dumps(swapped).encode() and response.json() == swapped
    assert "Insufficient credits" not in response.text and caught.value.body == swapped["error"]


def test_show_traceback_shows_a_custom_handlers_lines_as_the_cells_error(capsys):
    """A real InteractiveShell running a cell whose error a custom handler shows through show_traceback:
    the lines reach the method a kernel's shell overrides to send the error to the page (ipykernel's
    overrides it, with the same arguments), and a terminal's prints them."""
    sent: list[tuple[type, list[str]]] = []

    class KernelLike(InteractiveShell):
        def _showtraceback(self, etype, evalue, stb):
            sent.append((etype, stb))
            super()._showtraceback(etype, evalue, stb)

    def handler(shell, etype, value, tb, tb_offset=None):
        compat.show_traceback(shell, etype, value, ["ValueError: one sentence"])

    shell = KernelLike.instance()
    try:
        shell.set_custom_exc((ValueError,), handler)
        result = shell.run_cell("raise ValueError('deep inside')")
    finally:
        KernelLike.clear_instance()
    assert isinstance(result.error_in_exec, ValueError)  # the cell still failed
    assert sent == [(ValueError, ["ValueError: one sentence"])]
    shown = capsys.readouterr().out
    assert "ValueError: one sentence" in shown and "deep inside" not in shown
    kernel = inspect.signature(ZMQInteractiveShell._showtraceback)
    assert list(kernel.parameters) == ["self", "etype", "evalue", "stb"]
    assert ZMQInteractiveShell._showtraceback is not InteractiveShell._showtraceback


# other: __eq__; parts: urlsplit's _replace; conversation: a Conversation made by its own classmethod
OWN_OBJECTS = {"self", "cls", "super", "other", "parts", "conversation"}


def private_uses(name: str, tree: ast.AST) -> set[tuple[str, str]]:
    """(module, name) for each private name of another library a module uses: `from x._y import` of a
    third-party x, `obj._name` on an object not its own, `getattr(obj, "_name")`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if any(part.startswith("_") and part != "__future__" for part in node.module.split(".")):
                found.add((name, node.module))
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
            owner = node.value.func if isinstance(node.value, ast.Call) else node.value
            if not (isinstance(owner, ast.Name) and (owner.id in OWN_OBJECTS or owner.id in MODULES)):
                if node.attr not in ("_repr_mimebundle_", "_exit"):  # IPython's display protocol; os._exit
                    found.add((name, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                if str(node.args[1].value).startswith("_"):
                    found.add((name, str(node.args[1].value)))
    return found


def test_only_compat_uses_another_librarys_private_internals():
    found = set()
    for name, path in PACKAGE_FILES.items():
        if name != "_core.compat":
            found |= private_uses(name, ast.parse(path.read_text(encoding="utf-8")))
    assert found == set()


def test_the_private_use_finder_finds_each_kind():
    source = "from openai._x import Y\nstream._decoder\ngetattr(o, '_client')\nself._mine\n"
    assert private_uses("m", ast.parse(source)) == {("m", "openai._x"), ("m", "_decoder"), ("m", "_client")}
