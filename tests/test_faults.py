"""Every failure a learner can meet, against a real loopback server that misbehaves on purpose.

Each case asserts the sentence the learner sees, whether the SDK retried (by counting the requests the
server got), and that nothing already received is lost.
"""

from __future__ import annotations

import time

import openai
import pytest
from faultserver import UNRESOLVABLE_URL, WORDS, FaultServer, closed_port, connection_to

import akash_nb
from akash_nb._core import failures
from akash_nb._core.exceptions import AkashNBError
from akash_nb._core.failures import explain
from akash_nb._streaming import collect_stream

pytestmark = pytest.mark.faults

KEY = "sk-" + "test-0123456789abcdefXYZW"
TITLE = "Test provider"
MESSAGES = [{"role": "user", "content": "Once upon a time"}]
FULL = "".join(WORDS)


@pytest.fixture
def fault_server():
    with FaultServer() as server:
        yield server


def sdk(server, *, retries: int = 0, timeout: float = 2.0, hook: bool = False) -> openai.OpenAI:
    extra = {}
    if hook:
        extra["http_client"] = openai.DefaultHttpxClient(
            event_hooks={"response": [failures.check_content_type]}
        )
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=retries, timeout=timeout, **extra)


def failing(
    call, *, provider_name: str = "openai-compatible", url: str = "", streaming: bool | None = None
) -> AkashNBError:
    """Run `call`, which must raise, and return the explained error."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 (any failure: explain() is what is under test)
        call()
    return explain(caught.value, connection_to(url, provider_name, TITLE), streaming=streaming)


def create(client: openai.OpenAI, **kwargs):
    return lambda: client.chat.completions.create(model="fault-model", messages=MESSAGES, **kwargs)


def stream(client: openai.OpenAI):
    return client.chat.completions.create(model="fault-model", messages=MESSAGES, stream=True)


# --- statuses that are not retried ----------------------------------------------------------------------


def test_401_with_litellm_body_says_check_the_key_and_never_repeats_it(fault_server):
    fault_server.behave("status", status=401)
    error = failing(create(sdk(fault_server, retries=2)))
    assert isinstance(error.original, openai.AuthenticationError)
    assert error.original.body["type"] == "auth_error"  # the LiteLLM shape reached us
    assert (
        error.sentence == f"{TITLE} did not accept the key (401): check that the whole key was pasted, "
        "or create a new one."
    )
    assert KEY not in str(error) and KEY[-4:] not in str(error)
    assert not error.retried and fault_server.hits == 1  # retries=2, but a bad key is not retried


def test_a_server_message_echoing_the_whole_key_is_masked(fault_server):
    fault_server.behave("status", status=400, body={"error": {"message": f"Bad key {KEY} for this model"}})
    error = failing(create(sdk(fault_server)))
    assert "Bad key sk-**** for this model" in error.sentence
    assert KEY not in error.sentence


def test_402_says_no_credits_and_offers_the_local_provider(fault_server):
    fault_server.behave("status", status=402)
    error = failing(create(sdk(fault_server, retries=2)))
    assert error.sentence.startswith(f"{TITLE} answered 402: this key has no credits left")
    assert "add credits" in error.sentence and "local provider" in error.sentence
    assert not error.retried and fault_server.hits == 1


def test_404_names_the_model_and_points_at_models_list(fault_server):
    fault_server.behave("status", status=404)
    error = failing(create(sdk(fault_server, retries=2)))
    assert "(404): The model `no-such-model` does not exist." in error.sentence
    assert "client.models.list()" in error.sentence
    assert fault_server.hits == 1


def test_410_says_gone_for_good(fault_server):
    fault_server.behave("status", status=410)
    error = failing(create(sdk(fault_server, retries=2)))
    assert "gone for good (410): This model was retired" in error.sentence
    assert "client.models.list()" in error.sentence
    assert not error.retried and fault_server.hits == 1


def test_410_from_the_retired_akash_chat_provider_says_how_to_move(fault_server):
    fault_server.behave("status", status=410)
    error = failing(create(sdk(fault_server)), provider_name="akash-chat")
    assert "retired on 2025-11-21" in error.sentence and "AKASHML_API_KEY" in error.sentence


# --- statuses the SDK retries ---------------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_wait(fault_server):
    fault_server.behave("status", status=429, headers={"Retry-After": "1"})
    started = time.monotonic()
    error = failing(create(sdk(fault_server, retries=1)))
    assert time.monotonic() - started >= 0.95  # the SDK waited the 1 s the server asked for
    assert fault_server.hits == 2
    assert error.retried
    assert error.sentence == (
        f"{TITLE} is rate-limiting this key (429, Retry-After: 1 s); wait a minute or "
        "send fewer requests at once (still failing after 1 automatic retries)."
    )


def test_429_then_success_loses_nothing(fault_server):
    fault_server.behave("flaky", status=429, fail_first=1, headers={"Retry-After": "1"})
    response = create(sdk(fault_server, retries=2))()
    assert response.choices[0].message.content == FULL
    assert fault_server.hits == 2


def test_a_retry_after_beyond_two_minutes_is_not_waited_for(fault_server):
    fault_server.behave("status", status=429, headers={"Retry-After": "3600"})
    started = time.monotonic()
    error = failing(create(sdk(fault_server, retries=2)))
    assert fault_server.hits == 1 and time.monotonic() - started < 1
    assert "Retry-After: 3600 s" in error.sentence


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (500, "had an internal error (500)"),
        (502, "gateway got a bad answer from the model (502)"),
        (503, "is unavailable right now (503)"),
        (504, "found no free model backend in time (504)"),
        (529, "is overloaded (529)"),  # not standard HTTP, but >= 500, so the SDK retries it too
    ],
)
def test_server_errors_are_retried_then_explained(fault_server, status, words):
    fault_server.behave("status", status=status)
    error = failing(create(sdk(fault_server, retries=1)))
    assert fault_server.hits == 2
    assert error.retried
    assert error.sentence.startswith(f"{TITLE} {words}") or error.sentence.startswith(f"{TITLE}'s {words}")
    assert error.sentence.endswith("(still failing after 1 automatic retries).")


def test_a_server_saying_x_should_retry_false_is_obeyed(fault_server):
    fault_server.behave("status", status=503, headers={"x-should-retry": "false"})
    failing(create(sdk(fault_server, retries=2)))
    assert fault_server.hits == 1


def test_503_then_success_loses_nothing(fault_server):
    fault_server.behave("flaky", status=503, fail_first=2)
    assert create(sdk(fault_server, retries=2))().choices[0].message.content == FULL
    assert fault_server.hits == 3


# --- transport ------------------------------------------------------------------------------------------


def test_a_server_that_never_answers_times_out_and_is_retried(fault_server):
    fault_server.behave("hang")
    started = time.monotonic()
    error = failing(create(sdk(fault_server, retries=1, timeout=0.5)))
    assert time.monotonic() - started < 5
    assert isinstance(error.original, openai.APITimeoutError)
    assert fault_server.hits == 2
    assert error.sentence.startswith(f"{TITLE} did not answer in time")
    assert "akash_nb.client(timeout=...)" in error.sentence and error.retried


def test_connection_refused_names_the_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=1, timeout=2)
    error = failing(client.models.list, url=url)
    assert error.sentence == (
        f"Nothing is listening at {url}; check the URL and that the server is running "
        "(akash-nb doctor checks every provider) (still failing after 1 automatic "
        "retries)."
    )
    assert error.retried


def test_an_unresolvable_host_says_so():
    client = openai.OpenAI(base_url=UNRESOLVABLE_URL, api_key=KEY, max_retries=0, timeout=5)
    error = failing(client.models.list, url=UNRESOLVABLE_URL)
    assert error.sentence.startswith(f"The host in {UNRESOLVABLE_URL} does not resolve")


def test_the_retired_host_not_resolving_says_retired_and_how_to_move_to_akashml():
    client = openai.OpenAI(base_url=UNRESOLVABLE_URL, api_key=KEY, max_retries=0, timeout=5)
    error = failing(create(client), provider_name="akash-chat", url=UNRESOLVABLE_URL)
    assert error.sentence.startswith("The Akash Chat API (chatapi.akash.network) was retired on 2025-11-21")
    assert "AkashML" in error.sentence and "AKASHML_API_KEY" in error.sentence
    assert "AKASH_NB_PROVIDER=akashml" in error.sentence


# --- answers that cannot be read ------------------------------------------------------------------------


def test_malformed_json_is_explained_and_not_retried(fault_server):
    fault_server.behave("bad-json")
    error = failing(create(sdk(fault_server, retries=2)))
    assert error.sentence.startswith(
        f"{TITLE} sent an answer that is not valid JSON (Expecting value at character"
    )
    assert fault_server.hits == 1


def test_wrong_content_type_is_silently_a_str_without_the_hook(fault_server):
    # Why the hook exists: the SDK hands a non-JSON body back as text, with no error at all.
    fault_server.behave("html")
    assert isinstance(create(sdk(fault_server))(), str)


def test_wrong_content_type_with_the_hook_says_the_url_points_at_a_web_page(fault_server):
    fault_server.behave("html")
    error = failing(create(sdk(fault_server, retries=2, hook=True)), url=fault_server.url)
    assert error.sentence == (
        f"{TITLE} answered with text/html instead of the API's JSON: the base URL "
        f"{fault_server.url} probably points at a web page, not the API (API URLs "
        "usually end in /v1)."
    )
    assert fault_server.hits == 1


def test_the_hook_lets_good_answers_and_error_statuses_through(fault_server):
    client = sdk(fault_server, hook=True)
    assert create(client)().choices[0].message.content == FULL
    assert collect_stream(stream(client)).text == FULL
    fault_server.behave("status", status=402)
    assert "402" in failing(create(client)).sentence


# --- streams: nothing that arrived is lost -------------------------------------------------------------


def test_a_complete_stream_is_collected_whole(fault_server):
    seen: list[str] = []
    result = collect_stream(stream(sdk(fault_server)), TITLE, on_text=seen.append)
    assert (result.text, result.finish_reason, result.cut, result.error) == (FULL, "stop", False, None)
    assert seen[-1] == FULL and len(seen) == len(WORDS)


def test_a_stream_cut_mid_way_keeps_the_partial_text_marked_cut(fault_server):
    fault_server.behave("cut", chunks=3)
    result = collect_stream(stream(sdk(fault_server, retries=2)), TITLE)
    assert result.text == "".join(WORDS[:3]) and result.cut and result.finish_reason is None
    assert result.error.sentence == (
        f"{TITLE} closed the connection in the middle of the answer; the text "
        "so far is kept, marked cut; ask again for the rest."
    )
    assert not result.error.retried
    assert fault_server.hits == 1  # a stream that started is never retried by the SDK


def test_a_caller_iterating_a_cut_stream_keeps_its_parts_and_gets_the_cut_sentence(fault_server):
    fault_server.behave("cut", chunks=4)
    parts: list[str] = []
    chunks = stream(sdk(fault_server))
    with pytest.raises(openai.APIConnectionError) as caught:
        parts.extend(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert "".join(parts) == "".join(WORDS[:4])
    # explain() sees the request asked for a stream, so it says "cut", not "could not reach"
    assert "in the middle of the answer" in explain(caught.value, TITLE).sentence


def test_a_non_streamed_answer_cut_mid_body_is_retried(fault_server):
    fault_server.behave("cut")
    error = failing(create(sdk(fault_server, retries=1)))
    assert fault_server.hits == 2 and error.retried
    assert "closed the connection before the answer was complete" in error.sentence


def test_a_malformed_sse_event_keeps_the_text_before_it(fault_server):
    fault_server.behave("bad-sse", chunks=5)
    result = collect_stream(stream(sdk(fault_server)), TITLE)
    assert result.text == "".join(WORDS[:5]) and result.cut
    assert result.error.sentence.startswith(f"{TITLE} sent a streamed event that is not valid JSON")
    assert "the text so far is kept" in result.error.sentence


def test_an_error_event_inside_a_stream_keeps_the_text_and_repeats_the_message(fault_server):
    fault_server.behave("stream-error", chunks=2)
    result = collect_stream(stream(sdk(fault_server)), TITLE)
    assert result.text == "".join(WORDS[:2]) and result.cut
    assert (
        "reported an error in the middle of the answer: The model backend crashed while generating."
        in result.error.sentence
    )


def test_a_stream_ending_without_finish_reason_is_marked_cut(fault_server):
    fault_server.behave("early-end", chunks=6)
    result = collect_stream(stream(sdk(fault_server)), TITLE)
    assert result.text == "".join(WORDS[:6]) and result.cut and result.finish_reason is None
    assert "ended the stream before the model finished" in result.error.sentence


def test_a_stream_answered_with_html_is_not_mistaken_for_an_empty_answer(fault_server):
    fault_server.behave("html")
    result = collect_stream(stream(sdk(fault_server)), connection_to(fault_server.url, title=TITLE))
    assert result.cut and result.text == ""
    assert "answered with text/html instead of the API's JSON" in result.error.sentence


def test_a_stream_answered_with_plain_json_is_not_an_empty_answer(fault_server):
    fault_server.behave("bad-json")
    result = collect_stream(stream(sdk(fault_server)), TITLE)
    assert result.cut and "no finish_reason" in result.error.sentence


# --- through akash_nb.client() --------------------------------------------------------------------------


def test_akash_nb_client_against_the_fault_server_end_to_end(fault_server):
    client = akash_nb.client(provider="openai-compatible", base_url=fault_server.url, show=False)
    assert akash_nb.served_models(client) == ["fault-model"]
    model = akash_nb.choose_model(client, "Meta-Llama-3-1-8B-Instruct-FP8", show=False)
    response = client.chat.completions.create(model=model, messages=MESSAGES)
    assert response.choices[0].message.content == FULL

    fault_server.behave("status", status=402)
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(client)
    assert caught.value.sentence.startswith(
        "your OpenAI-compatible server answered 402: this key has no credits left"
    )
    assert isinstance(caught.value.__cause__, openai.APIStatusError)


def test_akash_nb_client_retries_twice_by_default(fault_server):
    fault_server.behave("status", status=503)
    client = akash_nb.client(provider="openai-compatible", base_url=fault_server.url, show=False)
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(client)
    assert fault_server.hits == 3  # max_retries=2
    assert caught.value.sentence.endswith("(still failing after 2 automatic retries).")


def test_akash_nb_client_with_a_bad_key_never_shows_it(fault_server, monkeypatch):
    monkeypatch.setenv("AKASH_NB_API_KEY", KEY)
    fault_server.behave("status", status=401, echo_key=True)
    client = akash_nb.client(provider="openai-compatible", base_url=fault_server.url, show=False)
    with pytest.raises(AkashNBError) as caught:
        akash_nb.served_models(client)
    assert fault_server.requests[0][2]["authorization"] == f"Bearer {KEY}"  # the key really was sent
    assert KEY not in caught.value.sentence and KEY not in repr(caught.value)
    assert "did not accept the key (401)" in caught.value.sentence


def test_akash_nb_client_refuses_a_web_page_where_the_api_should_be(fault_server):
    # The learner's own create() call, on a client from akash_nb.client(): an error, never a str.
    fault_server.behave("html")
    made = akash_nb.client(provider="openai-compatible", base_url=fault_server.url, show=False, max_retries=0)
    with pytest.raises(openai.APIResponseValidationError) as caught:
        made.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    sentence = akash_nb.explain(caught.value, connection_to(fault_server.url, title="your server")).sentence
    assert "answered with text/html instead of the API's JSON" in sentence
