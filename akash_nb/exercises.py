"""The checks behind each lesson's "Your turn" exercise: each looks at what the learner made (a response, a
messages list, some code) and returns a `Check` that says what is right or exactly what is still missing."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace

from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ._core import answers
from ._core.request_checks import estimate_tokens
from .generated_code import check_syntax, extract_code, run_tests


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
    answer = answers.read(response)
    if answer.problem is not None:  # no choices, or a choice with no message: nothing to check
        return Check(False, f"{name} holds no answer to check: {answer.problem.sentence}")
    if answer.note is not None:
        return Check(False, f"{name} holds no text to check {answer.note}; ask without tools=.")
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


# The claims check. A summary's sentence is a claim; it is supported when one clause of the text, read with
# what that clause hangs on, states the same relation. Each step is a rule you can read (no model):
#   1. Sentences split into clauses at punctuation, CONTRASTS, "but" and RELATIVES ("that", "which"...); a
#      clause hangs on the one before it (a "that" clause on the noun just before it).
#   2. A clause's key terms are its words less FUNCTION_WORDS; "AI" stands for "artificial intelligence" when
#      the text defines it so, and "(or computers)" makes "computers" another name for the word before it.
#   3. A term is negated when "not", "no", "never", "without"... comes before it in its clause.
#   4. A clause that starts with a contrast ("in contrast to", "unlike", "rather than"...) says the opposite
#      of the clause before it, so a claim may join the two only by negating one side: "AI is not natural
#      intelligence" is supported, "AI is the natural intelligence displayed by humans" is not.
#   5. Terms the claim links through a verb or "by" keep the text's order (who does what), reading "B was
#      V-ed by A" as "A V-ed B".
#   6. Numbers and names match exactly; other words by their stem (intelligent ~ intelligence).
# Limits: verbs are guessed from their form (no tagger), "it" and "she" are the text's topic, and a
# claim that merges two clauses ("agents that perceive ... to achieve their goals") fails; it errs towards
# "not stated", so a true summary may need to stay close to the text's sentences.
CONTRASTS = (
    "in contrast to",
    "in contrast with",
    "as opposed to",
    "unlike",
    "rather than",
    "instead of",
    "except",
    "whereas",
    "other than",
)
NEGATIONS = frozenset("not no never without cannot nor none neither nobody nothing".split())
SENTENCE_END = r"(?<=[.!?])[\"')]?\s+|\n+"  # '... "intelligent machines." This term' ends one
PRONOUNS = ("it", "its", "they", "them", "their", "she", "her", "he", "his", "him")
# Past tenses without -ed, so that "won" and "kept" count as verbs (see _is_verb).
IRREGULAR_VERBS = frozenset(
    """won was had made took kept gave came went got found became began built wrote taught led held left lost
    met paid put ran saw sent sold spent stood told thought understood brought bought caught chose drew drove
    ate fell felt fought flew forgot grew heard hid knew laid lay meant rose sang sat slept spoke stole swam
    threw wore""".split()
)
RELATIVES = frozenset("that which who whom whose where when such".split())
COPULAS = frozenset("is are was were be been being am refers refer means".split())
FUNCTION_WORDS = (
    COMMON_WORDS - {"one", "two", "first", "second", "human", "natural", "study", "studies"} - NEGATIONS
) | frozenset("its itself themselves or whether if because".split())
NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred
    thousand million billion first second third half""".split()
)
_TOKEN = re.compile(r"\d[\d.,]*\d|\d|[A-Za-z]+(?:'[a-z]+)?|[,;:]|[.!?]")  # quotes do not split


@dataclass(frozen=True)
class Term:
    word: str  # as written, lowercased
    stem: str
    exact: bool  # a number or a name: no stem matching
    negated: bool
    rank: float  # place in the clause, read "B V-ed by A" as "A V-ed B"
    verb_before: int  # how many verbs or "by" come before it in the clause (a link between two terms)


@dataclass(frozen=True)
class Clause:
    terms: tuple[Term, ...]
    opens: str  # "", "contrast", "but" or "relative": how it hangs on the clause before
    text: str
    verb_at: float = -1  # where the first verb is (rank): "that perceives" at 0, "that humans associate" at 1


def _stem(word: str) -> str:
    for suffix in ("ies", "ing", "ed", "es", "s", "ly", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _same(a: Term, b: Term) -> bool:
    if a.exact or b.exact:
        return a.word == b.word
    short = min(len(a.stem), len(b.stem))
    common = next((i for i, (x, y) in enumerate(zip(a.stem, b.stem, strict=False)) if x != y), short)
    return a.stem == b.stem or (common >= 4 and common >= short - 1) or (common >= 6)


def _aliases(source: str) -> dict[str, list[str]]:
    """Names the text gives: "Artificial intelligence (AI)" makes ai stand for both words; "machines (or
    computers)" makes computers stand for machines."""
    found: dict[str, list[str]] = {}
    for words, short in re.findall(r"((?:[A-Za-z]+ ){1,4})\(([A-Z]{2,6})\)", source):
        initials = short.lower()
        tail = words.lower().split()[-len(initials) :]
        if "".join(w[0] for w in tail) == initials:
            found[initials] = tail
    for word, other in re.findall(r"([a-z]+) \(or ([a-z]+)\)", source.lower()):
        found[other] = [word]
    return found


def _is_verb(token: str, before: str) -> bool:
    """A guess from the word's form and the word before it (no tagger): "demonstrated", "it perceives",
    "humans associate", "to achieve"."""
    if token in COPULAS or token in FUNCTION_WORDS:
        return False
    if token in IRREGULAR_VERBS:
        return True
    if before in {
        "to",
        "will",
        "can",
        "could",
        "may",
        "might",
        "must",
        "should",
        "would",
        "do",
        "does",
        "did",
        "not",
        "that",
        "which",
        "who",
        "they",
        "we",
        "it",
        "he",
        "she",
        "never",
    }:
        return True
    if token.endswith("ed") and len(token) > 4:
        return True
    plural = before.endswith("s") and not before.endswith("'s")  # "humans associate", not "Eiffel's company"
    return plural and before not in FUNCTION_WORDS and not token.endswith("s")


def _topic(source: str, aliases: dict[str, list[str]]) -> list[str]:
    """What the text is about: the words of its first clause before the verb ("Artificial intelligence")."""
    first = _clauses(source, aliases)
    if not first:
        return []
    clause = first[0][0]
    return [t.word for t in clause.terms if t.verb_before == 0][:4]


def _clauses(text: str, aliases: dict[str, list[str]]) -> list[list[Clause]]:
    """Each sentence of `text` as its clauses (see the rules above)."""
    text = re.sub(r"\((?:or )?[^()]*\)", " ", text)  # "(AI)", "(or computers)": kept as aliases instead
    lowered = text
    for phrase in CONTRASTS:
        lowered = re.sub(rf"\b{phrase}\b", " |contrast| ", lowered, flags=re.IGNORECASE)
    lowered = re.sub(r"n't\b", " not", lowered)
    sentences: list[list[Clause]] = []
    for sentence in re.split(SENTENCE_END, lowered):
        tokens = re.findall(r"\|contrast\||" + _TOKEN.pattern, sentence)
        if not any(t.isalnum() for t in tokens):
            continue
        pieces: list[tuple[str, list[str]]] = [("", [])]
        for token in tokens:
            low = token.lower()
            if token == "|contrast|":
                pieces.append(("contrast", []))
            elif low == "but":
                pieces.append(("but", []))
            elif low in RELATIVES and pieces[-1][1]:
                pieces.append(("relative", []))
            elif token in ",;:!?.":
                if pieces[-1][1]:
                    pieces.append(("relative" if token == ":" else "comma", []))
            else:
                pieces[-1][1].append(token)
        pieces = [(opens, words) for opens, words in pieces if words]
        if len(pieces) > 1 and pieces[0][0] == "contrast" and not pieces[1][0]:  # "Unlike X, Y ..."
            pieces[:2] = [("", pieces[0][1]), ("contrast", pieces[1][1])]
        clauses = [_clause(opens, words, aliases) for opens, words in pieces]
        sentences.append([c for c in clauses if c.terms])
    return [s for s in sentences if s]


def _clause(opens: str, words: list[str], aliases: dict[str, list[str]]) -> Clause:
    terms: list[Term] = []
    negated, links, before = False, 0, ""
    by_at: int | None = None
    verb_at = -1.0
    subject = False  # a pronoun came before the first verb
    if (
        opens == "relative" and words
    ):  # "that mimic ...", "that perceives its ...", not "that humans associate"
        first, second = words[0].lower(), (words[1].lower() if len(words) > 1 else "")
        noun = first.endswith("s") and second and second not in FUNCTION_WORDS and not second.endswith("s")
        before = "" if noun else "that"
    for index, token in enumerate(words):
        low = token.lower()
        if low in {"i", "we", "you", "he", "she", "they", "it"} and verb_at < 0:
            subject = True
        if low in NEGATIONS:
            negated = True
        elif low == "by":
            links += 1
            by_at = len(terms)
        elif low not in FUNCTION_WORDS or low in aliases:
            if _is_verb(low, before):
                links += 1
                if verb_at < 0:  # "which she kept": she, not the word it hangs on, keeps
                    verb_at = len(terms) + (0.5 if subject else 0)
            name = token[0].isupper() and index > 0 and low not in aliases
            number = low[0].isdigit() or low in NUMBER_WORDS
            for word in aliases.get(low, [low]):
                terms.append(Term(word, _stem(word), name or number, negated, len(terms), links))
        before = low
    if (
        links == 0 and not opens
    ):  # no verb found: the first "-s" word after a singular noun ("intelligence demonstrates")
        k = next(
            (
                k
                for k in range(1, len(terms))
                if terms[k].word.endswith("s") and not terms[k - 1].word.endswith("s")
            ),
            None,
        )
        if k is not None:
            terms = terms[:k] + [replace(t, verb_before=1) for t in terms[k:]]
            verb_at = k
    if by_at is not None and 0 < by_at < len(terms):  # "B V-ed by A": A comes first, then V, then B
        link = terms[by_at].verb_before
        end = next((i for i in range(by_at, len(terms)) if terms[i].verb_before != link), len(terms))
        agent, rest = terms[by_at:end], terms[:by_at]
        order = agent + rest[-1:] + rest[:-1] + terms[end:]
        place = {id(t): rank for rank, t in enumerate(order)}
        terms = [Term(t.word, t.stem, t.exact, t.negated, place[id(t)], t.verb_before) for t in terms]
    return Clause(tuple(terms), opens, " ".join(words), verb_at)


def _hung(sentence: list[Clause], i: int) -> tuple[Term, ...]:
    """The terms clause `i` hangs on: the whole clause before for a contrast or "but"; for "that ...", the
    noun before it (its last two terms), reaching past a short apposition ("agents: any device that")."""
    if i == 0 or not sentence[i].opens:
        return ()
    before = sentence[i - 1]
    if sentence[i].opens == "but":  # "X did A, but did not B": X; "X did A, but Y did B": Y's own
        return tuple(t for t in before.terms if t.verb_before == 0) if sentence[i].verb_at == 0 else ()
    if sentence[i].opens == "comma":  # "Marie Curie, a physicist born in Warsaw, won ...": who won is the
        if sentence[i].verb_at == 0:  # sentence's subject; "a physicist" is the words just before
            return tuple(t for t in sentence[0].terms if t.verb_before == 0)
        return before.terms[-2:]
    if sentence[i].opens != "relative":
        return before.terms
    if len(before.terms) <= 2 and before.opens == "relative":
        return _hung(sentence, i - 1) + before.terms
    return before.terms[-2:]


def _fits(claim: Clause, source: Clause, hung: tuple[Term, ...]) -> str | None:
    """None when `source` (read with the terms it hangs on, `hung`) states `claim`; else why not."""
    flip = source.opens == "contrast"
    # (term, its polarity or None for either, whether its order counts, whether it is the clause's own)
    scopes: list[list[tuple[Term, bool | None, bool, bool]]] = [
        [(t, t.negated, True, True) for t in source.terms]
    ]
    if hung:  # the claim may also join this clause to what it hangs on
        # "X that V Y": X does V, so it comes first; "X that Y V": Y does V to X, so X comes after the verb
        ordered = source.opens in ("relative", "comma")
        at = -1 if source.verb_at <= 0 else source.verb_at + 0.5
        # across a contrast the claim's negation may sit on the shared words: "not made of stone" for
        # "made of iron rather than stone"; the clause's own words still carry the polarity test
        scopes.append(
            [(t, t.negated != flip, True, True) for t in source.terms]
            + [(replace(t, rank=at), None if flip else t.negated, ordered, False) for t in hung]
        )
    reasons: list[tuple[int, str]] = []
    for scope in scopes:
        reason = _assign(claim, scope)
        if reason is None:
            return None
        reasons.append((_found(claim, tuple(t for t, *_ in scope)), reason))
    return max(reasons, key=lambda r: r[0])[1]  # why, for the reading that has most of the claim's words


def _assign(claim: Clause, scope: list[tuple[Term, bool | None, bool, bool]]) -> str | None:
    """Map each claim term to a term of `scope` with the same polarity, keeping the order of linked terms,
    and using at least one of the clause's own terms."""
    options: list[list[tuple[Term, bool, bool]]] = []
    for term in claim.terms:
        same = [(t, neg, ordered, own) for t, neg, ordered, own in scope if _same(term, t)]
        if not same:
            return f"the closest clause of the text lacks {term.word!r}"
        signed = [(t, ordered, own) for t, neg, ordered, own in same if neg is None or neg == term.negated]
        if not signed:
            change = "adds" if term.negated else "drops"
            return f"it {change} a negation, or crosses a contrast, at {term.word!r}"
        options.append(signed)
    if options and not any(all(own for *_, own in option) for option in options):
        return "it says only what the clause hangs on"  # that is the clause before's claim, not this one's

    def search(done: list[tuple[Term, Term, bool]]) -> bool:
        if len(done) == len(options):
            return True
        term = claim.terms[len(done)]
        for target, ordered, _ in options[len(done)]:
            ok = all(
                not (ordered and ordered2)
                or term.verb_before == prior.verb_before  # not linked by a verb or "by" in the claim
                or (term.rank > prior.rank) == (target.rank > target2.rank)
                or target.rank == target2.rank
                for prior, target2, ordered2 in done
            )
            if ok and search([*done, (term, target, ordered)]):
                return True
        return False

    if not search([]):
        return "it swaps who does what"
    return None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(SENTENCE_END, text) if re.search(r"[A-Za-z0-9]", s)]


def unsupported_claims(summary: str, source: str) -> list[tuple[str, str]]:
    """Each sentence of `summary` that no clause of `source` states, with why: (sentence, reason)."""
    aliases = _aliases(source)
    topic = _topic(source, aliases)
    for pronoun in PRONOUNS:  # the text's "it" is what the text is about (no other coreference)
        aliases[pronoun] = topic
    known = [
        (clause, _hung(sentence, i))
        for sentence in _clauses(source, aliases)
        for i, clause in enumerate(sentence)
    ]
    everywhere = [(t, t.negated, True) for clause, _ in known for t in clause.terms]
    failed: list[tuple[str, str]] = []
    for text in _sentences(summary):
        for sentence in _clauses(text, {k: v for k, v in aliases.items() if k not in PRONOUNS}):
            missing = [
                t.word for c in sentence for t in c.terms if not any(_same(t, k) for k, _, _ in everywhere)
            ]
            if missing:
                failed.append((text, f"{missing[0]!r} is not in the text"))
                break
            reason = _unsupported(sentence, known)
            if reason is not None:
                failed.append((text, reason))
                break
    return failed


def _found(claim: Clause, terms: tuple[Term, ...]) -> int:
    """How many of the claim's terms `terms` has."""
    return sum(any(_same(t, k) for k in terms) for t in claim.terms)


def _unsupported(sentence: list[Clause], known: list[tuple[Clause, tuple[Term, ...]]]) -> str | None:
    """Why some clause of a summary's sentence is not stated by the text, or None when every one is."""
    for i, claim in enumerate(sentence):
        claims = [claim]
        if i and claim.opens in ("contrast", "but"):  # "X, unlike Y" also claims "X is not Y"
            flip = claim.opens == "contrast"
            joined = tuple(
                Term(t.word, t.stem, t.exact, t.negated != flip, t.rank + 1000, t.verb_before + 1000)
                for t in claim.terms
            )
            claims.append(Clause(sentence[i - 1].terms + joined, claim.opens, claim.text))
        for one in claims:
            reasons = [(_fits(one, clause, hung), clause, hung) for clause, hung in known]
            if all(r is not None for r, _, _ in reasons):
                # say why for the clause closest to the claim: the one that has most of its words
                best = max(reasons, key=lambda r: (_found(one, r[1].terms + r[2]), "lacks" not in str(r[0])))
                return best[0]
    return None


def check_summary(response: object, text: str | None = None, max_words: int = 40) -> Check:
    """Lesson 4: a summary that ends by itself, within a word limit, and whose every sentence the text
    states (see `unsupported_claims`: reusing the text's words is not enough)."""
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
    if text is not None and (unsupported := unsupported_claims(content, text)):
        claim, why = unsupported[0]
        return Check(
            False,
            f'the text does not state "{claim}" ({why}): ask for a summary whose every sentence '
            "restates one sentence of the text, with its negations, numbers, names and who does what.",
        )
    return Check(True, f"a complete summary in {words} words; the text states each of its sentences.")


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


# lesson 07

# (prompt tokens, completion tokens, input price, output price): a usage each price alone decides, and one
# where swapping the prices, or per-thousand for per-million, gives another number.
COST_CASES = ((1_000_000, 0, 2.0, 5.0), (0, 1_000_000, 2.0, 5.0), (1200, 300, 0.5, 1.5))


def check_stream_cost(cost_of: object, chunks: object) -> Check:
    """Lesson 7: `cost_of(usage, price_in, price_out)` gives the dollars for `usage` at prices per million
    tokens, on the usage of the learner's own stream (`chunks`, whose last chunk carries it) and on
    COST_CASES; the expected number is the formula's, never a stored answer."""
    if not callable(cost_of):
        return Check(False, "cost_of should be a function: def cost_of(usage, price_in, price_out): ...")
    if (
        not isinstance(chunks, list)
        or not chunks
        or not all(isinstance(c, ChatCompletionChunk) for c in chunks)
    ):
        return Check(
            False,
            f"my_chunks is {type(chunks).__name__}, not the list of a stream's chunks: "
            "my_chunks = list(client.chat.completions.create(..., stream=True, "
            'stream_options={"include_usage": True})).',
        )
    own = chunks[-1].usage
    if own is None:
        return Check(
            False,
            'the last chunk carries no usage: add stream_options={"include_usage": True} to the call.',
        )
    cases = [(own, 0.10, 0.30)] + [
        (CompletionUsage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c), i, o)
        for p, c, i, o in COST_CASES
    ]
    for usage, price_in, price_out in cases:
        expected = (usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1_000_000
        call = (
            f"cost_of(usage with {usage.prompt_tokens} prompt and {usage.completion_tokens} completion "
            f"tokens, {price_in}, {price_out})"
        )
        try:
            got = cost_of(usage, price_in, price_out)
        except Exception as error:  # noqa: BLE001 (the learner's code: a sentence, never a traceback)
            return Check(False, f"{call} raised {type(error).__name__}: {error}.")
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return Check(False, f"{call} returned {got!r}; return the cost as a number of dollars.")
        if not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15):
            return Check(
                False,
                f"{call} returned {got!r}, not {expected!r}: prompt tokens × price_in plus completion "
                "tokens × price_out, divided by 1,000,000 (the prices are per million tokens).",
            )
    return Check(
        True,
        f"your stream's {own.prompt_tokens} + {own.completion_tokens} tokens cost "
        f"${cost_of(own, 0.10, 0.30):.8f} at $0.10 in, $0.30 out per million.",
    )


# lesson 08

CHECK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city for the next few days.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
]

# (function name, arguments as the model sent them, what is wrong with them; None: nothing)
TOOL_CALL_CASES = [
    ("add", '{"a": 2, "b": 3.5}', None),
    ("get_weather", '{"city": "Paris"}', None),
    ("get_weather", '{"city": "Paris", "days": 3}', None),
    ("add", '{"a": 2, "b": 3', "the JSON is cut off"),
    ("add", "[2, 3]", "the arguments are a list, not an object"),
    ("multiply", '{"a": 2, "b": 3}', "there is no function multiply"),
    ("add", '{"a": 2}', "b is missing"),
    ("add", '{"a": 2, "b": 3, "c": 4}', "c is not a parameter of add"),
    ("add", '{"a": "2", "b": 3}', "a is a string, not a number"),
    ("get_weather", '{"city": "Paris", "days": 1.5}', "days is 1.5, not an integer"),
    ("get_weather", '{"city": "Paris", "days": true}', "days is true, not an integer"),
    ("get_weather", '{"city": 75001}', "city is a number, not a string"),
]


def check_tool_validator(validate: object) -> Check:
    """Lesson 8: `validate(name, arguments, tools)` returns the arguments of a good call as a dict and raises
    ValueError, with a sentence, for every bad one in TOOL_CALL_CASES (bad JSON, an unknown function, a
    missing or extra field, a wrong JSON type)."""
    if not callable(validate):
        return Check(False, f"validate is {validate!r}: pass your function itself, e.g. check(my_validate).")
    for name, arguments, wrong in TOOL_CALL_CASES:
        call = f"{name}({arguments})"
        try:
            result = validate(name, arguments, CHECK_TOOLS)
        except ValueError as error:
            if wrong is None:
                return Check(False, f"{call} is a good call, but your function refused it: {error}")
            if not str(error).strip():
                return Check(False, f"{call} raised ValueError with no message; say what is wrong ({wrong}).")
            continue
        except Exception as error:  # noqa: BLE001 -- any crash in the learner's code is theirs to fix
            return Check(
                False,
                f"{call} raised {type(error).__name__} ({error}); raise ValueError with a sentence instead.",
            )
        if wrong is not None:
            return Check(False, f"{call} was accepted, but {wrong}: raise ValueError saying so.")
        if result != json.loads(arguments):
            return Check(False, f"{call} returned {result!r}; return the parsed arguments, a dict.")
    bad = sum(1 for *_, wrong in TOOL_CALL_CASES if wrong)
    return Check(True, f"{bad} bad calls refused, {len(TOOL_CALL_CASES) - bad} good ones passed through.")


# lesson 06

PERSON_TEXT = (
    "Grace Hopper was born in New York City on 9 December 1906. She joined the Harvard Mark I team in "
    "1944, led the work on the first compiler in 1952, and died in Arlington, Virginia, in 1992."
)
# What PERSON_TEXT says, field by field: each accepted spelling of a string, or the one number.
PERSON_FACTS: dict[str, tuple[str, ...] | int] = {
    "name": ("Grace Hopper",),
    "birth_year": 1906,
    "birth_city": ("New York City", "New York"),
}


def _same_words(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def check_extraction(
    response: object,
    facts: dict[str, tuple[str, ...] | int] = PERSON_FACTS,
) -> Check:
    """Lesson 6: the answer is complete JSON with every field of `facts`, each of the right type, and each
    says what the text says: a well-formed answer with a wrong year or city fails."""
    completion = _completion(response, "my_person")
    if isinstance(completion, Check):
        return completion
    choice = completion.choices[0]
    content = choice.message.content or ""
    if choice.finish_reason != "stop":
        return Check(
            False,
            f"finish_reason is {choice.finish_reason!r}: the JSON was cut off; raise max_tokens.",
        )
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        return Check(
            False,
            f"the answer is not JSON ({error.msg} at character {error.pos}): pass "
            "response_format with the schema so the server allows only JSON.",
        )
    if not isinstance(data, dict):
        return Check(False, f"the answer is a JSON {type(data).__name__}, not an object with the fields.")
    missing = [name for name in facts if name not in data]
    if missing:
        return Check(False, f"the JSON has no {', '.join(missing)}: name every field in the schema.")
    for name, fact in facts.items():
        value = data[name]
        if isinstance(fact, int):
            if not isinstance(value, int) or isinstance(value, bool):
                return Check(False, f"{name} is {value!r}, not a whole number: make it an int in the schema.")
            if value != fact:
                return Check(
                    False,
                    f"{name} is {value}, which is valid but not what the text says: the schema "
                    "checks the shape, not the facts; give the number a range in the schema, or say "
                    "in the prompt which number you want.",
                )
        else:
            if not isinstance(value, str):
                return Check(False, f"{name} is {value!r}, not a string: make it a str in the schema.")
            if not any(_same_words(value, spelling) for spelling in fact):
                return Check(
                    False,
                    f"{name} is {value!r}, which is valid but not what the text says: the schema "
                    "checks the shape, not the facts.",
                )
    return Check(True, f"complete JSON, and all {len(facts)} fields say what the text says.")
