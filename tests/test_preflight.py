"""check_request: each request that cannot work is refused with one sentence naming the fix."""

from __future__ import annotations

import json
import time

import httpx2
import pytest

from akash_nb._core.exceptions import ParameterError, RequestError
from akash_nb._core.parameters import check_parameters
from akash_nb._core.request_checks import RefusedRequest, check_request, estimate_tokens, refuse_bad_request

USER = [{"role": "user", "content": "Once upon a time"}]


def refused(messages, **kwargs) -> str:
    with pytest.raises(RequestError) as caught:
        check_request(messages, **kwargs)
    return caught.value.sentence


def test_the_guides_requests_pass():
    check_request(USER, model="Meta-Llama-3-1-8B-Instruct-FP8")
    check_request(
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Who won the FIFA World Cup in 2022?"},
            {"role": "assistant", "content": "Argentina."},
            {"role": "user", "content": "Can you tell me more about that?"},
        ],
        temperature=0,
        max_tokens=100,
        context_tokens=8192,
    )


def test_an_empty_prompt():
    assert refused([{"role": "user", "content": "  "}]).startswith("The prompt is empty: message 1 (user)")


def test_no_messages():
    assert "messages is empty; add at least one user message" in refused([])


@pytest.mark.parametrize("messages", ["Once upon a time", {"role": "user", "content": "hi"}, None])
def test_messages_that_are_not_a_list(messages):
    assert refused(messages).startswith("messages must be a list of {role, content} dicts, like")


@pytest.mark.parametrize("message", [{"content": "hi"}, {"role": "user"}, ("user", "hi"), "hi"])
def test_a_message_that_is_not_a_role_content_dict(message):
    assert "not a {role, content} dict" in refused([message])


def test_an_unknown_role_lists_the_valid_ones():
    assert refused([{"role": "bot", "content": "hi"}]) == (
        "Message 1 has role 'bot', which the API does not know; use one of: system, user, assistant, tool."
    )


@pytest.mark.parametrize("temperature", [-0.1, 2.5])
def test_temperature_outside_0_to_2(temperature):
    assert refused(USER, temperature=temperature).startswith(f"temperature={temperature!r} is outside 0–2")


@pytest.mark.parametrize("temperature", [0, 0.7, 2])
def test_temperature_inside_0_to_2(temperature):
    check_request(USER, temperature=temperature)


@pytest.mark.parametrize("max_tokens", [0, -5])
def test_max_tokens_not_above_zero(max_tokens):
    assert refused(USER, max_tokens=max_tokens).startswith(f"max_tokens={max_tokens} is outside 1–")


@pytest.mark.parametrize(
    "parameter", [{"temperature": 5}, {"temperature": -0.1}, {"max_tokens": 0}, {"max_tokens": -5}]
)
def test_one_bad_parameter_has_one_sentence_in_check_request_check_parameters_and_a_chat_request(parameter):
    with pytest.raises(ParameterError) as checked:
        check_parameters(parameter)
    request = httpx2.Request(
        "POST", "http://127.0.0.1:9/v1/chat/completions", content=json.dumps({"messages": USER, **parameter})
    )
    with pytest.raises(RefusedRequest) as sent:
        refuse_bad_request(request)
    assert refused(USER, **parameter) == checked.value.sentence == sent.value.sentence


def test_max_tokens_larger_than_the_context():
    assert refused(USER, max_tokens=10_000, context_tokens=8192).startswith(
        "max_tokens=10000 is larger than the model's context of 8192 tokens"
    )


def test_a_prompt_that_cannot_fit_says_by_how_much():
    sentence = refused([{"role": "user", "content": "x" * 40_000}], context_tokens=8192)
    assert sentence.startswith("The prompt is about 10000 tokens (characters / 4) but the context holds 8192")
    assert "shorten it by about 1808 tokens (~7232 characters)" in sentence


def test_prompt_plus_max_tokens_over_the_context_says_what_max_tokens_fits():
    sentence = refused([{"role": "user", "content": "x" * 32_000}], max_tokens=500, context_tokens=8192)
    assert "exceed the context of 8192 by about 308 tokens; lower max_tokens to 192" in sentence


@pytest.mark.parametrize("content", [42, b"bytes", {"text": "hi"}])
def test_non_text_content(content):
    assert "the API needs text" in refused([{"role": "user", "content": content}])


def test_an_image_part_in_a_system_message_needs_text():
    sentence = refused(
        [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, *USER]
    )
    assert "system messages take text only" in sentence


def test_text_parts_and_user_images_are_fine():
    check_request(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "x"}},
                ],
            }
        ]
    )


def test_content_none_is_only_for_assistant_tool_calls():
    check_request([*USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}])
    assert "has content None" in refused([{"role": "user", "content": None}])


def test_a_model_that_is_not_an_id():
    assert "pick one from client.models.list()" in refused(USER, model="")


def test_estimate_is_characters_over_four_rounded_up():
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5)] == [0, 1, 1, 2]


def test_checks_are_fast():
    messages = [{"role": "user", "content": "word " * 2000}] * 50
    started = time.perf_counter()
    for _ in range(20):
        check_request(messages, temperature=1, max_tokens=10, context_tokens=200_000)
    assert time.perf_counter() - started < 0.5
