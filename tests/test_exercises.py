"""The "Your turn" checks: each passes on a right answer, and fails, saying what is missing, on known-wrong
answers: the wrong model, an invented turn, an unfaithful summary, code that fails its tests."""

from __future__ import annotations

import nbformat
import pytest
from openai.types.chat import ChatCompletion
from project import REPLAY, ROOT

from akash_nb import exercises, notebooks
from akash_nb.guide import GUIDE_TEXT, SUMMARY
from akash_nb.providers import LOCAL_MODEL_NAME as MODEL


def completion(
    content: str,
    finish_reason: str = "stop",
    model: str = MODEL,
    completion_tokens: int = 12,
    prompt_tokens: int = 5,
) -> ChatCompletion:
    """A response as the SDK parses it from a server's JSON (the same path real answers take)."""
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def test_nothing_yet_says_what_to_do():
    check = exercises.check_setup(None, MODEL, [MODEL])
    assert not check.passed and "client.chat.completions.create" in check.message
    assert str(check).startswith("✗ Not yet:")
    assert not exercises.check_setup("a string", MODEL, [MODEL]).passed


def test_setup_needs_a_served_model_and_some_text():
    served = [MODEL]
    assert exercises.check_setup(completion("Paris."), MODEL, served).passed
    assert not exercises.check_setup(completion("Paris.", model="gpt-4"), MODEL, served).passed
    assert not exercises.check_setup(completion("   "), MODEL, served).passed


@pytest.mark.parametrize("chosen", [None, "", "gpt-4", "Meta-Llama-3-1-8B-Instruct-FP8"])
def test_setup_fails_on_a_model_the_provider_does_not_serve_even_when_it_answered(chosen):
    """The embedded server answers any model name with its one model, so the answer alone proves nothing:
    the check judges the learner's choice."""
    check = exercises.check_setup(completion("Paris."), chosen, [MODEL])
    assert not check.passed and "served list" in check.message


def test_length_stop_needs_the_budget_to_stop_it():
    assert exercises.check_length_stop(completion("Once", "length", completion_tokens=20)).passed
    stopped = exercises.check_length_stop(completion("The end.", "stop"))
    assert not stopped.passed and "max_tokens" in stopped.message
    assert not exercises.check_length_stop(completion("x", "length", completion_tokens=50)).passed


def conversation(last: str = "Gonzalo Montiel scored it.") -> list[dict]:
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Who won the FIFA World Cup in 2022?"},
        {"role": "assistant", "content": "Argentina won it, beating France on penalties."},
        {"role": "user", "content": "Can you tell me more about that?"},
        {"role": "assistant", "content": "The final was played at the Lusail Iconic Stadium."},
        {"role": "user", "content": "Who scored the winning penalty?"},
        {"role": "assistant", "content": last},
    ]


def test_third_turn_passes_with_the_models_own_answer_to_the_whole_conversation():
    answer = completion("Gonzalo Montiel scored it.", prompt_tokens=90)
    assert exercises.check_third_turn(conversation(), answer).passed


def test_third_turn_checks_the_alternation():
    good, answer = conversation(), completion("Gonzalo Montiel scored it.", prompt_tokens=90)
    missing_reply = [*good[:-2], good[-1]]
    assert "append each assistant reply" in exercises.check_third_turn(missing_reply, answer).message
    assert not exercises.check_third_turn("not a list", answer).passed


def test_an_invented_third_turn_fails():
    """The learner typed the assistant's answer instead of asking the model."""
    model_said = completion("The winning penalty was scored by Messi.", prompt_tokens=90)
    invented = exercises.check_third_turn(conversation("Gonzalo Montiel."), model_said)
    assert not invented.passed and "not the model's answer" in invented.message
    assert "response" in exercises.check_third_turn(conversation(), None).message
    assert not exercises.check_third_turn(conversation(), None).passed


def test_a_third_answer_written_without_the_conversation_fails():
    """Only the last question was sent: the answer is real but knows nothing of the turns before it."""
    alone = completion("Gonzalo Montiel scored it.", prompt_tokens=8)
    check = exercises.check_third_turn(conversation(), alone)
    assert not check.passed and "send the whole messages list" in check.message


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
    assert exercises.check_summary(completion("AI is machine intelligence."), GUIDE_TEXT).passed
    assert "cut off" in exercises.check_summary(completion("AI is", "length"), GUIDE_TEXT).message
    assert "words" in exercises.check_summary(completion("word " * 50), GUIDE_TEXT).message


FAITHFUL = (
    "Artificial intelligence is intelligence demonstrated by machines that perceive their "
    "environment and take actions to achieve their goals."
)


@pytest.mark.parametrize(
    ("summary", "invented"),
    [
        (
            (
                "Artificial intelligence (AI) is a field that combines human capabilities with artificial "
                "intelligence."
            ),
            ["combines", "capabilities"],
        ),
        (
            "AI is intelligence demonstrated by machines, which gives them self-awareness.",
            ["self", "awareness"],
        ),
        (
            (
                "Artificial intelligence (AI) is a field that combines human intelligence with the "
                "capabilities of machines to create new knowledge and capabilities."
            ),
            ["combines", "capabilities", "knowledge"],
        ),
    ],
)
def test_a_summary_that_adds_claims_absent_from_the_text_fails(summary, invented):
    check = exercises.check_summary(completion(summary), GUIDE_TEXT)
    assert not check.passed, summary
    for word in invented:
        assert word in check.message


def test_a_faithful_summary_and_the_guides_own_pass_the_claims_check():
    assert exercises.check_summary(completion(FAITHFUL), GUIDE_TEXT).passed
    assert exercises.unsupported_words(SUMMARY, GUIDE_TEXT) == []


def test_repeatable_compares_the_two_answers():
    assert exercises.check_repeatable(completion("same"), completion("same")).passed
    differ = exercises.check_repeatable(completion("a"), completion("b"))
    assert not differ.passed and "temperature=0" in differ.message
    assert not exercises.check_repeatable(completion("a"), None).passed


def test_repeatable_says_where_two_answers_part_and_how_to_pin_one_slot():
    # A multi-slot server (the class server has 32) can flip one near-tie token between two requests.
    differ = exercises.check_repeatable(completion("Cloud power for all"), completion("Cloud power to all"))
    assert not differ.passed
    assert "part at word 3" in differ.message and '"id_slot": 0' in differ.message


def test_a_check_renders_as_text_and_html():
    bundle = exercises.Check(True, "done")._repr_mimebundle_()
    assert bundle["text/plain"] == "✓ done" and "done" in bundle["text/html"]


def test_repeatable_needs_two_calls_and_third_turn_spots_a_cell_run_twice():
    same = completion("same")
    assert "call create(...) twice" in exercises.check_repeatable(same, same).message
    too_many = [{"role": "system", "content": "s"}] + [
        {"role": r, "content": "x"} for _ in range(4) for r in ("user", "assistant")
    ]
    assert "a cell ran twice" in exercises.check_third_turn(too_many, completion("x")).message


def test_palindrome_fails_on_the_wrong_function_name():
    other = "```python\ndef palindrome(s):\n    return s == s[::-1]\n```"
    assert "no is_palindrome" in exercises.check_palindrome(other).message


# --- the lessons' own solutions, run under replay ---------------------------------------------------------


def test_every_lessons_solution_passes_its_check_and_run_all_leaves_it_alone():
    """Solutions are markdown (Run All skips them); run as code after the exercise, each passes its check
    on the recorded answers."""
    for path in notebooks.lessons(ROOT / "notebooks"):
        committed = nbformat.read(path, as_version=4)
        assert not [c for c in committed.cells if notebooks.SOLUTION_TAG in c.metadata.get("tags", [])]
        nb, error = notebooks.execute(path, REPLAY, solutions=True)
        assert error is None, f"{path.name}: {error}"
        (solution,) = [c for c in nb.cells if notebooks.SOLUTION_TAG in c.metadata.get("tags", [])]
        shown = [o.data["text/plain"] for o in solution.outputs if o.output_type == "execute_result"]
        assert shown and shown[-1].startswith("✓"), f"{path.name}'s solution: {shown}"
