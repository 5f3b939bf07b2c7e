"""The checks behind each lesson's "Your turn" exercise: each looks at what the learner made (a response, a
messages list, some code) and returns a `Check` that says what is right or exactly what is still missing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from openai.types.chat import ChatCompletion

from .code import check_syntax, extract_code, run_tests
from .preflight import estimate_tokens


@dataclass(frozen=True)
class Check:
    passed: bool
    message: str

    def __str__(self) -> str:
        return ("✓ " if self.passed else "✗ Not yet: ") + self.message

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        colour = "#2e7d32" if self.passed else "#c62828"
        return {"text/plain": str(self), "text/html": f'<b style="color:{colour}">{self!s}</b>'}


def _completion(response: object, name: str) -> ChatCompletion | Check:
    """`response` itself when it is a chat completion, else the Check saying what `name` holds instead."""
    if response is None:
        return Check(
            False,
            f"{name} is None: call client.chat.completions.create(...) and assign the result to {name}.",
        )
    if not isinstance(response, ChatCompletion):
        return Check(
            False,
            f"{name} is a {type(response).__name__}, not the response object that "
            "client.chat.completions.create(...) returns.",
        )
    return response


def check_setup(response: object, model: object, served: list[str]) -> Check:
    """Lesson 0: `model` (the id the learner chose) is one the provider serves, the response came from it,
    and it has some text. The choice is checked, not only the answer: some servers (the embedded one)
    answer whatever model name they are asked for."""
    if not isinstance(model, str) or not model.strip():
        return Check(False, f"my_model is {model!r}: set it to one id from the served list {served}.")
    if model not in served:
        return Check(False, f"my_model={model!r} is not in the served list {served}; pick one of those.")
    completion = _completion(response, "my_response")
    if isinstance(completion, Check):
        return completion
    if completion.model != model:
        return Check(
            False,
            f"the answer came from {completion.model!r}, not my_model={model!r}: pass "
            "model=my_model to create().",
        )
    if not (completion.choices[0].message.content or "").strip():
        return Check(False, "the answer is empty; ask a question that needs words to answer.")
    usage = completion.usage  # a provider may not report it: the check passes all the same
    told = f" with {usage.completion_tokens} tokens" if usage else " (it did not report its usage)"
    return Check(True, f"{completion.model} answered{told}.")


def check_length_stop(response: object, budget: int = 20) -> Check:
    """Lesson 1: an answer cut off by its token budget, and the budget respected."""
    completion = _completion(response, "short_response")
    if isinstance(completion, Check):
        return completion
    reason = completion.choices[0].finish_reason
    used = completion.usage.completion_tokens if completion.usage else None
    if reason != "length":
        return Check(
            False,
            f"finish_reason is {reason!r}; set max_tokens to {budget} or less so the model "
            "runs out of budget before it finishes.",
        )
    if used is not None and used > budget:
        return Check(False, f"it used {used} completion tokens; the budget was {budget}.")
    after = f" after {used} tokens" if used is not None else ""
    return Check(True, f"finish_reason is 'length'{after}: the budget stopped it.")


def check_third_turn(messages: object, response: object = None) -> Check:
    """Lesson 2: the FIFA conversation carried to a third answered turn, whose answer is `response`'s: a
    real answer from the model, written with the whole conversation before it in the prompt."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return Check(False, "messages should be a list of {'role': ..., 'content': ...} dicts.")
    roles = [m.get("role") for m in messages]
    expected = ["system"] + ["user", "assistant"] * 3
    if len(roles) > len(expected):
        return Check(
            False,
            f"messages has {len(roles)} messages, more than three turns: a cell ran twice; "
            "run the lesson again from the guide's first cell.",
        )
    if roles != expected:
        return Check(
            False,
            f"the roles are {roles}; expected {expected}: append each assistant reply "
            "before the next user message.",
        )
    if not str(messages[-1].get("content") or "").strip():
        return Check(False, "the last assistant reply is empty.")
    completion = _completion(response, "response")
    if isinstance(completion, Check):
        return completion
    answer = completion.choices[0].message.content or ""
    if messages[-1]["content"] != answer:
        return Check(
            False,
            "the last assistant message is not the model's answer in `response`: append "
            "response.choices[0].message.content, not words of your own.",
        )
    before = estimate_tokens("".join(str(m.get("content") or "") for m in messages[:-1]))
    used = completion.usage.prompt_tokens if completion.usage else None
    if used is not None and used < before // 2:
        return Check(
            False,
            f"the answer was written from a prompt of {used} tokens, but the conversation "
            f"before it is about {before}: send the whole messages list.",
        )
    return Check(True, "three answered turns, the last one the model's own answer to the whole conversation.")


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


# Words any summary may use without the text saying them: function words, and the verbs a summary frames
# the text with ("refers to", "describes"). Everything else must come from the text (see unsupported_words).
COMMON_WORDS = frozenset(
    """
a an the and or but nor so yet of in on at to for from by with without within about as into onto than then
that this these those which who whom whose what when where while how why it its it's they them their there
here is are was were be been being has have had do does did can could may might must shall should will would
not no also often usually generally commonly typically both either each every all any some such other another
more most less many much very one two first second main mainly broad broadly overall essentially
i we you he she his her our your my me us him
refers refer referred referring defined define defines describes describe described describing
involves involve involved including include includes included known called term terms
concept field study studies area idea means meaning mean used use uses using
associated association exhibited exhibit exhibits shown show shows displays display
contrast opposed unlike compared versus rather instead whereas like
mentions mention mentioned says say said states state stated
text summary summarize summarized passage
""".split()
)
MIN_STEM = 5  # a word is the text's when a word of the text begins with its first 5 letters


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w]


def unsupported_words(summary: str, source: str) -> list[str]:
    """The words of `summary` that `source` never uses (after COMMON_WORDS, and allowing other forms of a
    word: `intelligent` is supported by `intelligence`), in order, each once. A summary that needs such a
    word says something the text does not, as "self-awareness" or "combines human capabilities" would."""
    known = set(_words(source))
    extra: list[str] = []
    for word in _words(summary):
        stem = word[:MIN_STEM]  # a shorter word must begin a word of the text: take ~ takes
        supported = word in COMMON_WORDS or any(k.startswith(stem) for k in known)
        if not supported and word not in extra:
            extra.append(word)
    return extra


def check_summary(response: object, text: str | None = None, max_words: int = 40) -> Check:
    """Lesson 4: a summary that ends by itself, within a word limit, and says nothing `text` does not
    (see `unsupported_words`)."""
    completion = _completion(response, "my_summary")
    if isinstance(completion, Check):
        return completion
    content = completion.choices[0].message.content or ""
    words = len(content.split())
    reason = completion.choices[0].finish_reason
    if reason != "stop":
        return Check(
            False,
            f"finish_reason is {reason!r}: the summary was cut off; give it more "
            "max_tokens or ask for fewer words.",
        )
    if words > max_words:
        return Check(False, f"the summary has {words} words; the limit is {max_words}.")
    if text is not None and (extra := unsupported_words(content, text)):
        return Check(
            False,
            f"the summary uses words the text never does ({', '.join(extra)}), so it may "
            "claim what the text does not: ask for a summary in the text's own words.",
        )
    return Check(True, f"a complete summary in {words} words, every claim from the text.")


def check_repeatable(first: object, second: object) -> Check:
    """Lesson 5: two answers to the same request at temperature 0 are identical.

    Usual on one slot of one server, not promised on a multi-slot one: two requests can be answered by
    different slots, in batches of different sizes, whose arithmetic differs in the last bits, and one
    near-tie token then flips. So a failure names the first word where they part, and the llama.cpp fix
    (`extra_body={"id_slot": 0}`: both requests on one slot)."""
    one, two = _completion(first, "first"), _completion(second, "second")
    if isinstance(one, Check):
        return one
    if isinstance(two, Check):
        return two
    if one is two:
        return Check(False, "first and second are the same response; call create(...) twice.")
    if one.model != two.model:
        return Check(False, f"first came from {one.model} and second from {two.model}; ask one model twice.")
    a, b = one.choices[0].message.content or "", two.choices[0].message.content or ""
    if a != b:
        words_a, words_b = a.split(), b.split()
        same = next((i for i, (x, y) in enumerate(zip(words_a, words_b, strict=False)) if x != y), None)
        where = f"word {same + 1}" if same is not None else "the end"
        return Check(
            False,
            f"the two answers part at {where}; use temperature=0 (and the same prompt and max_tokens) "
            "for both. If you did, the server answered them on different slots or in different batches: "
            'on llama.cpp add extra_body={"id_slot": 0} to both calls to pin them to one slot.',
        )
    return Check(True, "two calls gave the same answer.")
