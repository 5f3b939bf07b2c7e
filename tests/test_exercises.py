"""The "Your turn" checks: each passes on a right answer, and fails, saying what is missing, on known-wrong
answers: the wrong model, an invented turn, an unfaithful summary, code that fails its tests."""

from __future__ import annotations

import json

import nbformat
import pytest
from helpers import completion
from hypothesis import given
from hypothesis import strategies as st
from project import REPLAY, ROOT

from akash_nb import exercises
from akash_nb._core.providers import LOCAL_MODEL_NAME as MODEL
from akash_nb._guide import GUIDE_TEXT, SUMMARY
from akash_nb._tools import notebooks


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


# The old check's "faithful" example ("intelligence demonstrated by machines that perceive their
# environment...") merges two sentences and makes the machines the text's agents: it no longer passes.
FAITHFUL = (
    "Intelligent agents perceive their environment and take actions that maximize their chance of "
    "achieving their goals."
)
FALSE_AI = "Artificial intelligence is the natural intelligence displayed by humans and animals."


def test_the_false_sentence_made_of_the_texts_words_fails():
    """Issue 21: every word of it is in the text (the old word-overlap check passed it), but the text says
    the opposite: AI is machine intelligence, in contrast to the natural intelligence of humans."""
    assert exercises.unsupported_words(FALSE_AI, GUIDE_TEXT) == []
    check = exercises.check_summary(completion(FALSE_AI), GUIDE_TEXT)
    assert not check.passed
    assert FALSE_AI in check.message and "ask for a summary" in check.message
    assert check.message.count(". ") == 0, "one sentence"


# Summaries that stay close to the text (a sentence copied, a clause kept, a passive turned active, a
# contrast turned into a negation): each must pass.
TRUE_AI = [
    "AI is intelligence demonstrated by machines.",
    "Artificial intelligence (AI) is intelligence demonstrated by machines.",
    "Machines demonstrate artificial intelligence.",
    "Artificial intelligence is intelligence demonstrated by computers.",
    "AI is not the natural intelligence displayed by humans and animals.",
    "Natural intelligence is displayed by humans and animals.",
    "AI refers to intelligence demonstrated by machines, as opposed to natural intelligence.",
    "AI is intelligence demonstrated by machines, unlike the natural intelligence of humans and animals.",
    "Leading AI textbooks define the field as the study of intelligent agents.",
    "An intelligent agent is any device that perceives its environment and takes actions.",
    "Machines mimic cognitive functions that humans associate with the human mind.",
    "Machines mimic cognitive functions, such as learning and problem-solving.",
    "AI is intelligence demonstrated by machines. It is the study of intelligent agents.",
    FAITHFUL,
]


@pytest.mark.parametrize("summary", TRUE_AI)
def test_a_summary_the_text_states_passes(summary):
    check = exercises.check_summary(completion(summary), GUIDE_TEXT)
    assert check.passed, check.message


# Built from the text's words, each says something else: (summary, what the message must name).
FALSE_AI_CLAIMS = [
    (FALSE_AI, "natural"),  # crosses "in contrast to"
    ("AI refers to natural intelligence, as opposed to intelligence demonstrated by machines.", "natural"),
    ("Natural intelligence is not displayed by humans and animals.", "negation"),  # adds a negation
    ("AI is not intelligence demonstrated by machines.", "AI is not"),  # negates the text's own claim
    ("Machines do not mimic cognitive functions.", "Machines do not"),
    ("AI is intelligence demonstrated by humans.", "humans"),  # the phrase on the wrong subject
    ("Humans mimic cognitive functions.", "Humans mimic"),  # humans associate; machines mimic
    ("The environment perceives intelligent agents.", "swaps"),  # who perceives whom
    ("Intelligence demonstrates machines.", "swaps"),
    ("Leading AI textbooks define the field as the study of 3 intelligent agents.", "'3'"),  # a number
    ("AI is intelligence demonstrated by machines. Humans take actions.", "Humans take actions"),
]


@pytest.mark.parametrize(("summary", "named"), FALSE_AI_CLAIMS)
def test_a_summary_that_changes_what_the_text_says_fails(summary, named):
    check = exercises.check_summary(completion(summary), GUIDE_TEXT)
    assert not check.passed, summary
    assert named in check.message


TOWER = """The Eiffel Tower was designed by Gustave Eiffel's company and opened in 1889.
Unlike most towers of its time, it is made of wrought iron rather than stone.
Critics did not like the tower at first, but Parisians came to love it.
The tower has three levels for visitors, and it is 330 metres tall."""

CURIE = """Marie Curie, a physicist born in Warsaw, won the Nobel Prize in 1903 with Pierre Curie.
She studied radioactivity instead of chemistry at first, and she never patented her methods.
All her samples were stored in lead boxes, except the radium, which she kept in her desk.
Pierre taught physics in Paris, while Marie worked without a salary for years."""


@pytest.mark.parametrize(
    ("text", "summary", "stated"),
    [
        (TOWER, "The Eiffel Tower opened in 1889.", True),
        (TOWER, "The Eiffel Tower opened in 1890.", False),  # a date
        (TOWER, "Gustave Eiffel's company designed the Eiffel Tower.", True),
        (TOWER, "The Eiffel Tower designed Gustave Eiffel's company.", False),  # who did what
        (TOWER, "The Eiffel Tower was designed by Gustave Martin's company.", False),  # a name
        (TOWER, "The tower is made of wrought iron.", True),
        (TOWER, "The tower is made of stone.", False),  # crosses "rather than"
        (TOWER, "The tower is not made of stone.", True),
        (TOWER, "Most towers of its time were made of wrought iron.", False),  # crosses "unlike"
        (TOWER, "Critics did not like the tower at first.", True),
        (TOWER, "Critics liked the tower at first.", False),  # drops a negation
        (TOWER, "Parisians came to love the tower.", True),
        (TOWER, "Parisians did not like the tower at first.", False),  # across "but", the wrong subject
        (TOWER, "Critics came to love the tower.", False),
        (TOWER, "The tower has four levels for visitors.", False),  # a number
        (TOWER, "The tower is 330 metres tall.", True),
        (TOWER, "The tower never opened.", False),  # adds a negation
        (CURIE, "Marie Curie was a physicist born in Warsaw.", True),
        (CURIE, "Pierre Curie was born in Warsaw.", False),  # the phrase on the wrong subject
        (CURIE, "Marie Curie won the Nobel Prize in 1903.", True),
        (CURIE, "Marie Curie won the Nobel Prize in 1911.", False),
        (CURIE, "She studied chemistry at first.", False),  # crosses "instead of"
        (CURIE, "Marie Curie never patented her methods.", True),
        (CURIE, "Marie Curie patented her methods.", False),
        (CURIE, "The radium was stored in lead boxes.", False),  # crosses "except"
        (CURIE, "She kept the radium in her desk.", True),
        (CURIE, "Marie taught physics in Paris.", False),
        (CURIE, "Marie worked without a salary for years.", True),
        (CURIE, "Marie worked with a salary.", False),  # drops "without"
        (CURIE, "Paris taught physics to Pierre.", False),
    ],
)
def test_the_rule_holds_on_other_texts(text, summary, stated):
    check = exercises.check_summary(completion(summary), text)
    assert check.passed is stated, check.message


NOUNS = ["cats", "dogs", "farmers", "engineers", "rivers", "teachers", "robots", "pilots"]
VERBS = ["chase", "feed", "train", "visit", "protect", "follow", "paint", "ignore"]


@given(
    st.lists(st.sampled_from(NOUNS), min_size=2, max_size=2, unique=True),
    st.sampled_from(VERBS),
    st.integers(2, 99),
)
def test_properties_of_a_plain_claim(pair, verb, count):
    """A sentence copied from the text passes; negating it, swapping who does what, or changing its number
    fails."""
    subject, thing = pair
    text = f"The {subject} {verb} {count} {thing} every day. The weather is mild."
    passes = lambda summary: exercises.check_summary(completion(summary), text).passed  # noqa: E731
    assert passes(f"The {subject} {verb} {count} {thing} every day.")
    assert passes(f"The {subject} {verb} {count} {thing}.")
    assert not passes(f"The {subject} do not {verb} {count} {thing} every day.")
    assert not passes(f"The {thing} {verb} {count} {subject} every day.")
    assert not passes(f"The {subject} {verb} {count + 1} {thing} every day.")
    assert not passes(f"The {subject} never {verb} {thing}.")


def test_a_summary_that_adds_claims_absent_from_the_text_fails():
    for summary, invented in [
        (
            "Artificial intelligence (AI) is a field that combines human capabilities with machines.",
            "combines",
        ),
        ("AI is intelligence demonstrated by machines, which gives them self-awareness.", "gives"),
    ]:
        check = exercises.check_summary(completion(summary), GUIDE_TEXT)
        assert not check.passed and invented in check.message, check.message


def test_the_word_overlap_proxy_still_lists_the_guides_words():
    assert exercises.unsupported_words(SUMMARY, GUIDE_TEXT) == []
    assert exercises.unsupported_words("AI gives self-awareness.", GUIDE_TEXT) == [
        "gives",
        "self",
        "awareness",
    ]


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


# --- lesson 07 -----------------------------------------------------------------------------------------


def chunk(content: str | None, finish_reason: str | None = None, usage: dict | None = None) -> object:
    """A stream chunk as the SDK parses it; with `usage` and no content, the include_usage chunk."""
    from openai.types.chat import ChatCompletionChunk

    choices = (
        []
        if content is None
        else [{"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}]
    )
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": MODEL,
            "choices": choices,
            "usage": usage,
        }
    )


USAGE = {"prompt_tokens": 39, "completion_tokens": 60, "total_tokens": 99}
STREAM = [chunk("Octopuses"), chunk(" have three hearts.", "stop"), chunk(None, usage=USAGE)]


def right_cost(usage, price_in, price_out):
    return (usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1_000_000


def test_stream_cost_passes_the_formula_on_a_stream_with_its_usage():
    check = exercises.check_stream_cost(right_cost, STREAM)
    assert check.passed, check.message
    assert "39 + 60 tokens" in check.message


@pytest.mark.parametrize(
    ("cost_of", "said"),
    [
        (
            lambda u, i, o: (u.prompt_tokens * o + u.completion_tokens * i) / 1_000_000,
            "not",
        ),  # prices swapped
        (lambda u, i, o: (u.prompt_tokens * i + u.completion_tokens * o) / 1_000, "per million"),  # per 1,000
        (lambda u, i, o: u.total_tokens * i / 1_000_000, "price_out"),  # one price for every token
        (lambda u, i, o: u.prompt_tokens * i / 1_000_000, "completion"),  # the answer's tokens forgotten
        (lambda u, i, o: None, "return the cost as a number"),  # the cell as given
        (lambda u, i, o: f"${right_cost(u, i, o)}", "return the cost as a number"),  # a string
        (lambda u: 0.0, "raised TypeError"),  # the wrong parameters
        ("0.0000219", "should be a function"),
    ],
)
def test_stream_cost_fails_a_wrong_formula(cost_of, said):
    check = exercises.check_stream_cost(cost_of, STREAM)
    assert not check.passed and said in check.message, check.message


def test_stream_cost_fails_without_the_stream_or_its_usage():
    assert "list of a stream's chunks" in exercises.check_stream_cost(right_cost, None).message
    assert "list of a stream's chunks" in exercises.check_stream_cost(right_cost, []).message
    not_streamed = exercises.check_stream_cost(right_cost, [completion("x")])
    assert not not_streamed.passed and "stream" in not_streamed.message
    no_usage = exercises.check_stream_cost(right_cost, STREAM[:-1])
    assert not no_usage.passed and "include_usage" in no_usage.message


# --- lesson 08: the tool-call validator -------------------------------------------------------------------


def _schemas(tools):
    return {t["function"]["name"]: t["function"]["parameters"] for t in tools}


def fields_only(name, arguments, tools):
    """The lesson's validate_call: the name, the JSON, missing and extra fields; no types."""
    schemas = _schemas(tools)
    if name not in schemas:
        raise ValueError(f"There is no function {name!r}.")
    try:
        args = json.loads(arguments)
    except json.JSONDecodeError:
        raise ValueError(f"The arguments of {name} are not JSON.") from None
    if not isinstance(args, dict):
        raise ValueError(f"The arguments of {name} are not a JSON object.")
    schema = schemas[name]
    if [p for p in schema.get("required", []) if p not in args]:
        raise ValueError(f"{name} misses a field.")
    if [p for p in args if p not in schema["properties"]]:
        raise ValueError(f"{name} has an extra field.")
    return args


TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool}


def typed(name, arguments, tools):
    """The lesson's solution: fields_only, then each value's JSON type (a bool is no integer)."""
    args = fields_only(name, arguments, tools)
    for key, value in args.items():
        expected = _schemas(tools)[name]["properties"][key]["type"]
        if (isinstance(value, bool) and expected != "boolean") or not isinstance(value, TYPES[expected]):
            raise ValueError(f"{name}'s {key} must be a JSON {expected}.")
    return args


def test_tool_validator_passes_the_solution():
    check = exercises.check_tool_validator(typed)
    assert check.passed, check.message


@pytest.mark.parametrize(
    ("validate", "says"),
    [
        (lambda name, arguments, tools: json.loads(arguments), "the arguments are a list, not an object"),
        (fields_only, "a is a string, not a number"),
        (lambda name, arguments, tools: typed(name, arguments.replace("true", "1"), tools), "days is true"),
        (lambda name, arguments, tools: _schemas(tools)[name] and typed(name, arguments, tools), "KeyError"),
        (lambda name, arguments, tools: {}, "return the parsed arguments"),
        (lambda name, arguments, tools: (_ for _ in ()).throw(ValueError("no")), "is a good call"),
        (None, "pass your function itself"),
    ],
    ids=[
        "accepts-everything",
        "no-types",
        "bool-as-integer",
        "crashes",
        "wrong-return",
        "refuses-all",
        "none",
    ],
)
def test_tool_validator_fails_a_wrong_validator_saying_why(validate, says):
    check = exercises.check_tool_validator(validate)
    assert not check.passed
    assert says in check.message, check.message


def test_tool_validator_wants_a_sentence_in_each_refusal():
    def silent(name, arguments, tools):
        try:
            return typed(name, arguments, tools)
        except ValueError:
            raise ValueError("") from None

    assert "no message" in exercises.check_tool_validator(silent).message


# --- lesson 06: structured output ---------------------------------------------------------------------------

RIGHT_PERSON = '{"name": "Grace Hopper", "birth_year": 1906, "birth_city": "New York City"}'


def test_extraction_passes_the_facts_of_the_text_in_any_spacing_or_case():
    assert exercises.check_extraction(completion(RIGHT_PERSON)).passed
    spaced = '{\n  "name": "grace  hopper",\n  "birth_year": 1906,\n  "birth_city": "New York"\n}'
    assert exercises.check_extraction(completion(spaced)).passed


def test_the_facts_the_extraction_check_holds_are_the_texts():
    for fact in exercises.PERSON_FACTS.values():
        spellings = (str(fact),) if isinstance(fact, int) else fact
        assert all(s in exercises.PERSON_TEXT for s in spellings), fact


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        # what SmolLM2-135M wrote under the plain int schema (lesson 06): valid, and wrong
        ('{"name": "Grace Hopper", "birth_year": 923000000000, "birth_city": "New York City"}', "birth_year"),
        # another year of the text, and another city of the text: well-formed and still wrong
        ('{"name": "Grace Hopper", "birth_year": 1992, "birth_city": "New York City"}', "birth_year"),
        ('{"name": "Grace Hopper", "birth_year": 1906, "birth_city": "Arlington"}', "birth_city"),
        ('{"name": "Grace", "birth_year": 1906, "birth_city": "New York City"}', "name"),
    ],
)
def test_a_well_formed_extraction_that_says_what_the_text_does_not_fails(reply, field):
    check = exercises.check_extraction(completion(reply))
    assert not check.passed and field in check.message and "not what the text says" in check.message


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ('{\n  "name": "Grace Hopper",\n  "birthyear": 9 Dec 1906\n}', "not JSON"),
        ('Here is the JSON: {"name": "Grace Hopper"}', "not JSON"),
        ('["Grace Hopper", 1906, "New York City"]', "not an object"),
        (
            '{"name": "Grace Hopper", "birthyear": "9 December 1906", "birthcity": "New York City"}',
            "no birth_year",
        ),
        (
            '{"name": "Grace Hopper", "birth_year": "1906", "birth_city": "New York City"}',
            "not a whole number",
        ),
        ('{"name": "Grace Hopper", "birth_year": true, "birth_city": "New York City"}', "not a whole number"),
        ('{"name": ["Grace Hopper"], "birth_year": 1906, "birth_city": "New York City"}', "not a string"),
    ],
)
def test_a_malformed_extraction_fails_saying_what_is_wrong(reply, says):
    check = exercises.check_extraction(completion(reply))
    assert not check.passed and says in check.message, check.message


def test_a_cut_off_extraction_fails_on_its_finish_reason():
    cut = exercises.check_extraction(completion('{"name": "Grace Hopper", "birth_ye', "length"))
    assert not cut.passed and "cut off" in cut.message and "max_tokens" in cut.message
    assert "my_person is None" in exercises.check_extraction(None).message


def test_lesson_04_shows_the_proxy_gamed_and_its_check_and_no_gaming_hint():
    """Issue 21: the lesson runs the false sentence through both checks, prints the check's source, and no
    hint teaches to drop the words a word-overlap score lists (which games it)."""
    nb = nbformat.read(ROOT / "notebooks" / "04-summarization.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "unsupported_words(false_summary, text)" in code
    assert "unsupported_claims(false_summary, text)" in code
    assert "inspect.getsource(akash_nb.exercises.check_summary)" in code
    assert "ask again without it" not in prose  # the old hint: drop the words a word-overlap score lists
    shown = [
        o.text
        for c in nb.cells
        if "false_summary" in c.source
        for o in c.get("outputs", [])
        if o.output_type == "stream"
    ]
    assert shown and "words the text never uses: []" in shown[0] and "crosses a contrast" in shown[0]
