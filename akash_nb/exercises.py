"""The checks behind each lesson's "Your turn" exercise.

Each check looks at what the learner made (a response, a messages list, some code) and returns a `Check`
that says what is right or exactly what is still missing. A check never raises on a learner's mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

from openai.types.chat import ChatCompletion

from .code import check_syntax, extract_code, run_tests


@dataclass(frozen=True)
class Check:
    passed: bool
    message: str

    def __str__(self) -> str:
        return ("✓ " if self.passed else "✗ Not yet: ") + self.message

    def _repr_mimebundle_(self, include=None, exclude=None):
        colour = "#2e7d32" if self.passed else "#c62828"
        return {"text/plain": str(self), "text/html": f'<b style="color:{colour}">{str(self)}</b>'}


def _response_problem(response: object, name: str) -> Check | None:
    if response is None:
        return Check(False, f"{name} is None: call client.chat.completions.create(...) and assign the "
                            f"result to {name}.")
    if not isinstance(response, ChatCompletion):
        return Check(False, f"{name} is a {type(response).__name__}, not the response object that "
                            "client.chat.completions.create(...) returns.")
    return None


def check_setup(response: object, served: list[str]) -> Check:
    """Lesson 0: a response from a model the provider really serves, with some text in it."""
    if problem := _response_problem(response, "my_response"):
        return problem
    if response.model not in served:
        return Check(False, f"{response.model!r} answered, which is not in the served list {served}.")
    if not (response.choices[0].message.content or "").strip():
        return Check(False, "the answer is empty; ask a question that needs words to answer.")
    return Check(True, f"{response.model} answered with {response.usage.completion_tokens} tokens.")


def check_length_stop(response: object, budget: int = 20) -> Check:
    """Lesson 1: an answer cut off by its token budget, and the budget respected."""
    if problem := _response_problem(response, "short_response"):
        return problem
    reason = response.choices[0].finish_reason
    used = response.usage.completion_tokens if response.usage else None
    if reason != "length":
        return Check(False, f"finish_reason is {reason!r}; set max_tokens to {budget} or less so the model "
                            "runs out of budget before it finishes.")
    if used is not None and used > budget:
        return Check(False, f"it used {used} completion tokens; the budget was {budget}.")
    after = f" after {used} tokens" if used is not None else ""
    return Check(True, f"finish_reason is 'length'{after}: the budget stopped it.")


def check_third_turn(messages: object) -> Check:
    """Lesson 2: the FIFA conversation carried to a third answered turn."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return Check(False, "messages should be a list of {'role': ..., 'content': ...} dicts.")
    roles = [m.get("role") for m in messages]
    expected = ["system"] + ["user", "assistant"] * 3
    if len(roles) > len(expected):
        return Check(False, f"messages has {len(roles)} messages, more than three turns: a cell ran twice; "
                            "run the lesson again from the guide's first cell.")
    if roles != expected:
        return Check(False, f"the roles are {roles}; expected {expected}: append each assistant reply "
                            "before the next user message.")
    if not str(messages[-1].get("content") or "").strip():
        return Check(False, "the last assistant reply is empty.")
    return Check(True, "three answered turns, each reply appended before the next question.")


PALINDROME_TESTS = """\
assert is_palindrome("racecar")
assert is_palindrome("")
assert not is_palindrome("python")
"""


def check_palindrome(reply: object) -> Check:
    """Lesson 3: the model's reply holds an is_palindrome function that passes the tests."""
    if not isinstance(reply, str) or not reply.strip():
        return Check(False, "reply should be the model's answer text (response.choices[0].message.content).")
    found = extract_code(reply)
    if found is None:
        return Check(False, "the reply has no ```python code block; ask for the code in a code block.")
    syntax = check_syntax(found.code)
    if not syntax.ok:
        cut = "" if found.closed else " (the block was cut off: raise max_tokens)"
        return Check(False, f"the code does not parse, {syntax.message}{cut}.")
    if "def is_palindrome" not in found.code:
        return Check(False, "the code defines no is_palindrome function; name it in the prompt.")
    run = run_tests(found.code, PALINDROME_TESTS)
    if not run.passed:
        return Check(False, f"the tests did not pass: {run.output or 'no output'}.")
    return Check(True, "is_palindrome passes all three tests.")


def check_summary(response: object, max_words: int = 40) -> Check:
    """Lesson 4: a summary that ends by itself, within a word limit."""
    if problem := _response_problem(response, "my_summary"):
        return problem
    text = response.choices[0].message.content or ""
    words = len(text.split())
    reason = response.choices[0].finish_reason
    if reason != "stop":
        return Check(False, f"finish_reason is {reason!r}: the summary was cut off; give it more "
                            "max_tokens or ask for fewer words.")
    if words > max_words:
        return Check(False, f"the summary has {words} words; the limit is {max_words}.")
    return Check(True, f"a complete summary in {words} words.")


def check_repeatable(first: object, second: object) -> Check:
    """Lesson 5: two answers to the same request at temperature 0 are identical."""
    for name, response in (("first", first), ("second", second)):
        if problem := _response_problem(response, name):
            return problem
    if first is second:
        return Check(False, "first and second are the same response; call create(...) twice.")
    a, b = first.choices[0].message.content, second.choices[0].message.content
    if a != b:
        return Check(False, "the two answers differ; use temperature=0 (and the same prompt and max_tokens) "
                            "for both.")
    return Check(True, "two calls gave the same answer.")
