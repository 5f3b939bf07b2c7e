"""The error tables as a specification: every row renders to one clean sentence, and docs/errors.md shows
exactly these rows. (How each row is reached from a real failure is in test_faults.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2  # the OpenAI SDK's HTTP library, used here only to build a response to explain
import openai
import pytest

from akash_nb._core import exceptions, failures, masking
from akash_nb._core.exceptions import AkashNBError, ConfigError, RequestError
from akash_nb._core.failures import NO_STATUS, STATUS, explain
from akash_nb._tools import errors_doc

DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
ALL = [
    *STATUS.values(),
    *NO_STATUS.values(),
    *(row for table in exceptions.SENTENCE_TABLES for row in table.values()),
]


def test_docs_errors_md_embeds_the_generated_table():
    text = DOCS.read_text()
    assert errors_doc.markdown_table() in text, (
        "docs/errors.md is out of date: paste akash_nb._tools.errors_doc.markdown_table() into it"
    )


def test_the_generator_leaves_the_committed_page_as_it_is(tmp_path):
    copy = tmp_path / "errors.md"
    copy.write_text(DOCS.read_text())
    assert errors_doc.write_docs(str(copy)) is False  # the committed page is what the generator writes
    copy.write_text(DOCS.read_text().replace("| 402 no credits", "| 402 stale row"))
    assert errors_doc.write_docs(str(copy)) is True and copy.read_text() == DOCS.read_text()


def test_the_docs_table_has_one_row_per_case():
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(ALL)  # header + one per case


class Filled(dict):
    """The fields a row names, each filled in: the usual ones as given, any other as 7."""

    def __missing__(self, key):
        return 7


@pytest.mark.parametrize("failure", ALL, ids=[f.case for f in ALL])
def test_every_row_is_one_sentence_that_says_what_to_do(failure):
    sentence = failure.sentence.format_map(
        Filled(
            provider="AkashML",
            detail="Something.",
            url="http://h/v1",
            wait="",
            status=500,
            name="max_tokens",
            expected="a whole number",
            got="'ten'",
            example="max_tokens=100",
            allowed="1–100",
            char="U+200B",
            where="the api_key= argument",
            what="The file",
            path="x.json",
            why="truncated",
            fix="delete it.",
        )
    )
    # every field filled: a brace left is one the sentence shows ({{ in the template: a JSON shape)
    assert (
        sentence.endswith(".")
        and sentence.count("{") == failure.sentence.count("{{")
        and "  " not in sentence
    )
    assert "\n" not in sentence


def test_the_retried_rows_are_the_ones_the_sdk_retries():
    # openai/_base_client.py _should_retry: 408, 409, 429 and >= 500
    assert {code for code, f in STATUS.items() if f.retry} == {
        c for c in STATUS if c in (408, 409, 429) or c >= 500
    }
    assert {kind for kind, f in NO_STATUS.items() if f.retry} == {
        "timeout",
        "refused",
        "dns",
        "connection",
        "dropped",
        "tab-unreachable",  # httpx2_jsfetch's ConnectError, which the SDK retries as any connection error
    }


def test_nothing_in_a_cut_stream_row_claims_nothing_was_lost():
    for kind in ("cut", "bad-sse", "stream-error", "ended-early", "interrupted"):
        assert "kept" in NO_STATUS[kind].lost and "kept" in NO_STATUS[kind].sentence


def test_an_akash_nb_error_is_passed_through_unchanged():
    error = ConfigError("Set AKASHML_API_KEY.")
    assert explain(error, "AkashML") is error


def test_request_errors_are_value_errors_and_akash_nb_errors():
    assert issubclass(RequestError, ValueError) and issubclass(RequestError, AkashNBError)


def test_a_plain_value_error_is_not_mistaken_for_a_bad_answer():
    error = explain(ValueError("invalid literal for int()"), "AkashML")
    assert "not valid JSON" not in error.sentence
    assert error.sentence == "AkashML: ValueError: invalid literal for int()"


def test_a_json_decode_error_is_a_bad_answer_or_a_bad_event():
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads('{"choices": [')
    assert "sent an answer that is not valid JSON" in explain(caught.value, "AkashML").sentence
    streamed = explain(caught.value, "AkashML", streaming=True).sentence
    assert "sent a streamed event that is not valid JSON" in streamed


def test_an_unknown_failure_keeps_its_type_and_masks_keys():
    error = explain(RuntimeError("token akml-abcdefSECRET rejected"), "AkashML")
    assert error.sentence == "AkashML: RuntimeError: token akml-**** rejected"
    assert isinstance(error.original, RuntimeError) and not error.retried


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Received API Key = sk-...WXYZ, Key Hash", "Received API Key = sk-****, Key Hash"),
        ("key akml-" + "0123456789abcdef is out of credits", "key akml-**** is out of credits"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ****"),
        ("the model sk is fine", "the model sk is fine"),
    ],
)
def test_mask_all_masks_key_shaped_tokens(text, masked):
    assert masking.mask_all(text) == masked


def test_an_unlisted_status_still_gets_a_sentence():
    request = httpx2.Request("POST", "http://h/v1/chat/completions")
    response = httpx2.Response(418, request=request, json={"message": "I'm a teapot"})
    error = explain(
        openai.APIStatusError("teapot", response=response, body={"message": "I'm a teapot"}), "AkashML"
    )
    assert error.sentence == "AkashML answered HTTP 418: I'm a teapot." and not error.retried


def test_ended_early_names_the_provider():
    assert failures.ended_early("AkashML").sentence.startswith("AkashML ended the stream before the model")
