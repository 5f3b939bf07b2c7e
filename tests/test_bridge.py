"""browser/bridge.js, the in-browser model, as the Pyodide kernel uses it: inside a Web Worker in Chromium.

A real loopback site holds the bridge, wllama 3.13.0 (browser/node_modules) and the SmolLM2 GGUF; Chromium
resolves no other host. The bridge answers the OpenAI calls the lessons make (models, chat completions
streamed and not) in llama.cpp server's shapes, refuses in one sentence what the in-browser model cannot do,
answers one request at a time, stops when the reader goes away, and loads warm from the browser's storage.
Answers are kept a few tokens long: the CPU is slow and shared.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bridge_page import BASE, CHROMIUM_ARGS, Site, build, missing, serve
from browser_helpers import chromium

from akash_nb._engine import weights

pytestmark = [pytest.mark.browser, pytest.mark.live]  # live: the real SmolLM2 file, not the stand-in

MODEL_ID = "SmolLM2-135M-Instruct"
LONG_PROMPT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and the sea."}]


class Page:
    """The probe page: call(kind, op, *args) runs `op` in the bridge's worker of that kind."""

    def __init__(self, page: Any, site: Site) -> None:
        self.page = page
        self.site = site
        self.requested: list[str] = []  # every URL the browser asked for, as the browser saw it
        self.model_gets = 0  # GETs of the model file, answered by the site or by the browser's HTTP cache
        page.context.on("request", self._saw)

    def _saw(self, request: Any) -> None:
        self.requested.append(request.url)
        self.model_gets += request.method == "GET" and request.url.endswith("/model.gguf")

    def call(self, kind: str, op: str, *args: Any) -> Any:
        return self.page.evaluate("([kind, op, args]) => call(kind, op, args)", [kind, op, list(args)])

    def post(self, payload: dict[str, Any], kind: str = "module", abort_after: int = 0) -> dict[str, Any]:
        return self.call(
            kind, "request", "POST", f"{BASE}/chat/completions", json.dumps(payload), abort_after
        )


@pytest.fixture(scope="module")
def probe() -> Iterator[Page]:
    problem = missing()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, serve(build(Path(folder), weights.ensure())) as site:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium()), headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = browser.new_context()
                context.set_default_timeout(180_000)
                page = Page(context.new_page(), site)
                page.page.goto(f"{site.origin}/index.html")
                page.page.evaluate("startWorker('module')")
                yield page
            finally:
                browser.close()


def events(result: dict[str, Any]) -> list[Any]:
    """The stream's events, decoded ('[DONE]' stays a string)."""
    return [
        event["data"] if event["data"] == "[DONE]" else json.loads(event["data"])
        for event in result["events"]
    ]


def content_chunks(stream: list[Any]) -> list[str]:
    return [
        chunk["choices"][0]["delta"]["content"]
        for chunk in stream
        if isinstance(chunk, dict) and chunk["choices"] and chunk["choices"][0]["delta"].get("content")
    ]


def test_models_lists_the_in_browser_model_before_it_loads(probe):
    result = probe.call("module", "request", "GET", f"{BASE}/models", None, 0)
    assert result["status"] == 200
    assert json.loads(result["text"]) == {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "akash-nb"}],
    }
    assert probe.call("module", "status")["loaded"] is False  # listing models does not download the model


def test_the_model_loads_from_the_site_in_the_worker(probe):
    loaded = probe.call("module", "load")
    status = loaded["status"]
    assert status["loaded"] is True and status["loading"] is False
    assert status["progress"]["loaded"] == status["progress"]["total"] == weights.GGUF_BYTES
    assert status["compat"] is False  # Chromium has JSPI and Memory64
    assert status["threads"] == 1  # the page is not cross-origin isolated
    assert "GET /model.gguf" in probe.site.served


def test_a_streamed_answer_comes_one_token_a_chunk_then_usage_then_done(probe):
    result = probe.post(
        {
            "model": MODEL_ID,
            "messages": LONG_PROMPT,
            "max_tokens": 6,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert result["status"] == 200 and result["contentType"] == "text/event-stream" and result["isStream"]
    stream = events(result)
    assert stream[-1] == "[DONE]"
    first, *_, finish, last = stream[:-1]
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert all(
        chunk["object"] == "chat.completion.chunk" and chunk["model"] == MODEL_ID for chunk in stream[:-1]
    )
    assert finish["choices"][0]["finish_reason"] == "length"
    assert last["choices"] == []
    pieces = content_chunks(stream)
    assert len(pieces) >= 2
    usage = last["usage"]
    assert usage["completion_tokens"] == len(pieces) == 6  # one chunk per token
    assert usage["prompt_tokens"] > len(LONG_PROMPT[0]["content"].split())  # the templated prompt, counted
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    arrivals = [event["at"] for event in result["events"]]
    assert arrivals[-1] > arrivals[1]  # streamed as generated, not all at the end


def test_without_include_usage_the_stream_has_no_usage_chunk(probe):
    stream = events(probe.post({"messages": LONG_PROMPT, "max_tokens": 2, "stream": True}))
    assert stream[-1] == "[DONE]"
    assert all(chunk["choices"] for chunk in stream[:-1])
    assert stream[-2]["choices"][0]["finish_reason"] == "length"


def test_a_whole_answer_has_usage_that_counts_its_tokens(probe):
    streamed_usage = events(
        probe.post(
            {
                "messages": LONG_PROMPT,
                "max_tokens": 2,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
    )[-2]["usage"]
    result = probe.post({"messages": LONG_PROMPT, "max_completion_tokens": 5, "temperature": 0, "seed": 1})
    assert result["status"] == 200
    answer = json.loads(result["text"])
    assert answer["object"] == "chat.completion" and answer["model"] == MODEL_ID
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 5
    assert answer["usage"]["prompt_tokens"] == streamed_usage["prompt_tokens"]  # same messages, same count
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + 5


def test_text_parts_developer_messages_and_stop(probe):
    result = probe.post(
        {
            "messages": [
                {"role": "developer", "content": "You answer in one word."},  # OpenAI's newer "system"
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Say "}, {"type": "text", "text": "yes."}],
                },
            ],
            "max_tokens": 8,
            "stop": ["\n"],
        }
    )
    answer = json.loads(result["text"])
    assert result["status"] == 200
    assert answer["choices"][0]["finish_reason"] in {"stop", "length"}
    assert "\n" not in answer["choices"][0]["message"]["content"]


def test_a_json_schema_answer_follows_the_schema(probe):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    result = probe.post(
        {
            "messages": [{"role": "user", "content": "Name a city in France as JSON."}],
            "max_tokens": 24,
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        }
    )
    answer = json.loads(result["text"])
    assert result["status"] == 200, answer
    if answer["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(answer["choices"][0]["message"]["content"])["city"], str)


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
            (
                "The in-browser model cannot call tools; use the replay route "
                "(AKASH_NB_PROVIDER=replay) or a real server for it."
            ),
        ),
        ({"n": 2}, "The in-browser model gives one choice per request (n must be 1)"),
        ({"logprobs": True}, "The in-browser model does not return log probabilities"),
    ],
)
def test_what_the_in_browser_model_cannot_do_is_one_sentence_in_a_400(probe, extra, sentence):
    result = probe.post({"messages": LONG_PROMPT, "max_tokens": 2, **extra})
    assert result["status"] == 400
    error = json.loads(result["text"])["error"]
    assert error["message"].startswith(sentence)
    assert error["type"] == "invalid_request_error" and error["code"] == 400


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/embeddings", None, 404, "has no /v1/embeddings"),
        ("POST", "/chat/completions", "{not json", 400, "not JSON"),
        ("POST", "/chat/completions", json.dumps({"messages": []}), 400, "non-empty list"),
        (
            "POST",
            "/chat/completions",
            json.dumps({"messages": [{"role": "tool", "content": "x"}]}),
            400,
            "role",
        ),
        ("GET", "/chat/completions", None, 405, "does not answer GET"),
    ],
)
def test_requests_it_cannot_read_get_an_openai_error(probe, method, path, body, status, words):
    result = probe.call("module", "request", method, f"{BASE}{path}", body, 0)
    assert result["status"] == status
    assert words in json.loads(result["text"])["error"]["message"]


def test_requests_wait_their_turn(probe):
    both = probe.page.evaluate(
        """([url, body]) => Promise.all([call('module', 'request', ['POST', url, body, 0]),
                                         call('module', 'request', ['POST', url, body, 0])])""",
        [f"{BASE}/chat/completions", json.dumps({"messages": LONG_PROMPT, "max_tokens": 3, "stream": True})],
    )
    first, second = ([event["at"] for event in result["events"]] for result in both)
    assert [result["status"] for result in both] == [200, 200], [result["text"] for result in both]
    assert second[1] >= first[-1]  # the second answer starts after the first has finished


def test_a_reader_that_goes_away_stops_the_answer(probe):
    aborted = probe.post({"messages": LONG_PROMPT, "max_tokens": 400, "stream": True}, abort_after=2)
    assert aborted["aborted"] and len(content_chunks(events(aborted))) == 2
    # 400 tokens take this CPU half a minute or more; a stopped answer frees the model at once
    after = probe.post({"messages": LONG_PROMPT, "max_tokens": 2})
    assert after["status"] == 200
    assert after["seconds"] < 15


def test_a_classic_worker_imports_it_and_loads_warm_from_storage(probe):
    probe.call("module", "load")  # loaded once (by now, or here when this test runs alone)
    downloads = probe.model_gets
    probe.page.evaluate("startWorker('classic')")
    loaded = probe.call("classic", "load")
    assert loaded["status"]["loaded"] is True
    assert probe.model_gets == downloads  # the second load reads the browser's stored copy, fetches nothing
    answer = json.loads(probe.post({"messages": LONG_PROMPT, "max_tokens": 2}, kind="classic")["text"])
    assert answer["usage"]["completion_tokens"] == 2


def test_without_jspi_it_answers_with_the_vendored_compat_build(probe):
    probe.page.evaluate("startWorker('module', 'no-jspi')")
    loaded = probe.call("no-jspi", "load")
    assert loaded["status"]["loaded"] is True and loaded["status"]["compat"] is True
    answer = json.loads(probe.post({"messages": LONG_PROMPT, "max_tokens": 2}, kind="no-jspi")["text"])
    assert answer["usage"]["completion_tokens"] == 2
    assert "GET /wllama-compat/wasm/wllama.wasm" in probe.site.served  # from the site, not jsDelivr


def test_a_damaged_model_file_is_one_sentence_and_is_not_kept(probe, tmp_path):
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUF" + bytes(60))  # a header and nothing else, like a cut download
    (tmp_path / "site").mkdir()
    with serve(build(tmp_path / "site", damaged)) as site:
        context = probe.page.context.browser.new_context()  # a profile of its own: nothing cached
        try:
            page = Page(context.new_page(), site)
            page.page.goto(f"{site.origin}/index.html")
            page.page.evaluate("startWorker('module')")
            results = [page.post({"messages": LONG_PROMPT, "max_tokens": 2}) for _ in range(2)]
            status = page.call("module", "status")
        finally:
            context.close()
    for result in results:
        assert result["status"] == 503
        assert "model.gguf is not a usable model" in json.loads(result["text"])["error"]["message"]
    assert status["loaded"] is False and "not a usable model" in status["error"]  # for the banner
    assert page.model_gets == 2  # the damaged copy was not kept in storage: the second load fetched it again


def test_no_request_left_the_origin(probe):
    assert probe.requested, "the page made no requests at all"
    elsewhere = [
        url for url in probe.requested if not url.startswith((probe.site.origin + "/", "blob:", "data:"))
    ]
    assert elsewhere == []
