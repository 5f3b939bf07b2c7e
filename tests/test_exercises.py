"""The "Your turn" checks: each passes on a right answer and says what is missing on a wrong one."""

from __future__ import annotations

from openai.types.chat import ChatCompletion

from akash_nb import exercises


def completion(content: str, finish_reason: str = "stop", model: str = "SmolLM2-135M-Instruct",
               completion_tokens: int = 12) -> ChatCompletion:
    """A response as the SDK parses it from a server's JSON (the same path real answers take)."""
    return ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": completion_tokens,
                  "total_tokens": 5 + completion_tokens},
    })


def test_nothing_yet_says_what_to_do():
    check = exercises.check_setup(None, ["m"])
    assert not check.passed and "client.chat.completions.create" in check.message
    assert str(check).startswith("✗ Not yet:")
    assert not exercises.check_setup("a string", ["m"]).passed


def test_setup_needs_a_served_model_and_some_text():
    served = ["SmolLM2-135M-Instruct"]
    assert exercises.check_setup(completion("Paris."), served).passed
    assert not exercises.check_setup(completion("Paris.", model="gpt-4"), served).passed
    assert not exercises.check_setup(completion("   "), served).passed


def test_length_stop_needs_the_budget_to_stop_it():
    assert exercises.check_length_stop(completion("Once", "length", completion_tokens=20)).passed
    stopped = exercises.check_length_stop(completion("The end.", "stop"))
    assert not stopped.passed and "max_tokens" in stopped.message
    assert not exercises.check_length_stop(completion("x", "length", completion_tokens=50)).passed


def test_third_turn_checks_the_alternation():
    good = [{"role": "system", "content": "s"}] + [
        {"role": r, "content": "x"} for _ in range(3) for r in ("user", "assistant")]
    assert exercises.check_third_turn(good).passed
    missing_reply = good[:-2] + [good[-1]]
    assert "append each assistant reply" in exercises.check_third_turn(missing_reply).message
    assert not exercises.check_third_turn("not a list").passed


def test_palindrome_runs_the_model_code():
    right = "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
    wrong = "```python\ndef is_palindrome(s):\n    return True\n```"
    assert exercises.check_palindrome(right).passed
    failed = exercises.check_palindrome(wrong)
    assert not failed.passed and "tests did not pass" in failed.message
    cut = exercises.check_palindrome("```python\ndef is_palindrome(s):\n    return s ==")
    assert "cut off" in cut.message
    assert "no ```python code block" in exercises.check_palindrome("Just reverse it.").message


def test_summary_must_end_by_itself_within_the_word_limit():
    assert exercises.check_summary(completion("AI is machine intelligence.")).passed
    assert "cut off" in exercises.check_summary(completion("AI is", "length")).message
    assert "words" in exercises.check_summary(completion("word " * 50)).message


def test_repeatable_compares_the_two_answers():
    assert exercises.check_repeatable(completion("same"), completion("same")).passed
    assert "temperature=0" in exercises.check_repeatable(completion("a"), completion("b")).message


def test_a_check_renders_as_text_and_html():
    bundle = exercises.Check(True, "done")._repr_mimebundle_()
    assert bundle["text/plain"] == "✓ done" and "done" in bundle["text/html"]


def test_repeatable_needs_two_calls_and_third_turn_spots_a_cell_run_twice():
    same = completion("same")
    assert "call create(...) twice" in exercises.check_repeatable(same, same).message
    too_many = [{"role": "system", "content": "s"}] + [
        {"role": r, "content": "x"} for _ in range(4) for r in ("user", "assistant")]
    assert "a cell ran twice" in exercises.check_third_turn(too_many).message
