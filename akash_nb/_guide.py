"""The guide's own printed outputs beside the learner's ("Guide vs you"): what the seed guide printed for the
same prompt next to the answer the learner just got, which model and provider gave each, and a fact check
when the guide's prompt has facts to check.

    akash_nb.guide_vs_you("conversation", response, client)
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import openai
from IPython.lib.pretty import PrettyPrinter
from openai.types.chat import ChatCompletion

from ._core import answers
from ._core.connection import connection_for
from ._streaming import StreamResult
from .exercises import unsupported_claims

# --- what the guide printed, verbatim from the seed page ---------------------------------------------------

STORY = "...there was a beautiful kingdom, hidden from the rest of the world by a veil of mist and legend. The kingdom was called Azura, and it was a place of wonder, where magic was woven into the very fabric of everyday life. The people of Azura lived in harmony with the land, respecting the ancient traditions and rituals that had been passed down through generations.\n\nIn the heart of the kingdom, there stood a magnificent castle, its towers reaching high into the sky like giant's fists. The castle was the seat of power, where the wise and just king, Maric, ruled over Azura with kindness and wisdom. King Maric was loved by his people, and his rule was marked by peace and prosperity.\n\nBut little did anyone know, a great darkness was stirring in the shadows, threatening to disrupt the balance of the kingdom. A powerful sorcerer, named Malakai, had been secretly gathering his strength, seeking to overthrow King Maric and claim the throne for himself...\n\nWould you like me to continue the story, or do you have any other requests?"  # noqa: E501
FIFA_FIRST = "Argentina won the 2022 FIFA World Cup, which was held in Qatar from November 20 to December 18, 2022. They defeated France 4-2 in a penalty shootout, after the match ended 3-3 after extra time, in the final on December 18, 2022."  # noqa: E501
FIFA_SECOND = "The 2022 FIFA World Cup Final was a historic match between Argentina and France, held at the Lusail Iconic Stadium in Lusail, Qatar. The match was played on December 18, 2022, in front of a packed stadium with over 88,000 spectators.\n\nArgentina, led by their captain Lionel Messi, took an early lead with Messi scoring a penalty in the 23rd minute and Angel Di Maria adding another goal in the 36th minute. Argentina seemed to be in control, but France staged an incredible comeback in the second half.\n\nKylian Mbappé scored two goals in the 80th and 81st minutes to level the score at 2-2, sending the match into extra time. In extra time, Messi scored again in the 108th minute, but Mbappé equalized once more with a penalty in the 118th minute, making the score 3-3.\n\nAs the match ended 3-3 after extra time, it went to a penalty shootout to determine the winner. Argentina goalkeeper Emiliano Martínez made a crucial save, and Gonzalo Montiel scored the winning penalty, securing a 4-2 victory for Argentina in the shootout.\n\nLionel Messi was awarded the Golden Ball as the tournament's best player, and Emiliano Martínez received the Golden Glove as the best goalkeeper. This victory marked Argentina's third World Cup title, with their previous wins in 1978 and 1986.\n\nThe match was widely regarded as one of the greatest World Cup finals of all time, with many praising the incredible performances of both teams, particularly Messi and Mbappé."  # noqa: E501
REVERSE = '**Reversing a String in Python**\n================================\n\nHere\'s a simple function that uses Python\'s slicing feature to reverse a string.\n\n```python\ndef reverse_string(s):\n    """\n    Reverses a given string.\n\n    Args:\n        s (str): The string to be reversed.\n\n    Returns:\n        str: The reversed string.\n    """\n    return s[::-1]\n```'  # noqa: E501
SUMMARY = "Artificial intelligence (AI) refers to the intelligence exhibited by machines, as opposed to natural human and animal intelligence. It involves the study of intelligent agents that perceive their environment and take actions to achieve their goals, and is often associated with machines that mimic"  # noqa: E501


@dataclass(frozen=True)
class Fact:
    claim: str  # e.g. "Argentina won"
    names: tuple[str, ...]  # an answer states the fact if it names one of these (case-insensitive)


WORLD_CUP_2022 = (Fact("Argentina won", ("Argentina",)), Fact("the final was in Lusail", ("Lusail",)))


@dataclass(frozen=True)
class Example:
    section: str  # the guide's heading
    model: str  # the model the guide's call asked for, on the retired Akash Chat API
    printed: str  # what the guide shows it printed
    facts: tuple[Fact, ...] = ()
    summarized: str | None = None  # for a summary: the text it must stay faithful to


GUIDE_TEXT = """\
Artificial intelligence (AI) is intelligence demonstrated by machines, in contrast to the natural intelligence displayed by humans and animals.
Leading AI textbooks define the field as the study of "intelligent agents": any device that perceives its environment and takes actions that maximize its chance of successfully achieving its goals.
Colloquially, the term "artificial intelligence" is often used to describe machines (or computers) that mimic "cognitive" functions that humans associate with the human mind, such as "learning" and "problem-solving".
"""  # noqa: E501 — the guide's text, kept as the guide wrote it

EXAMPLES: dict[str, Example] = {
    "completion": Example("Basic Text Completion", "Meta-Llama-3-1-8B-Instruct-FP8", STORY),
    "conversation": Example(
        "Conversation with AkashChat", "Meta-Llama-3-1-405B-Instruct-FP8", FIFA_FIRST, WORLD_CUP_2022
    ),
    "conversation-2": Example(
        "Conversation with AkashChat", "Meta-Llama-3-1-405B-Instruct-FP8", FIFA_SECOND, WORLD_CUP_2022
    ),
    "code": Example("Generating Code Snippets", "Meta-Llama-3-1-405B-Instruct-FP8", REVERSE),
    "summary": Example("Summarization", "Meta-Llama-3-1-405B-Instruct-FP8", SUMMARY, summarized=GUIDE_TEXT),
}


def fact_check(text: str, facts: tuple[Fact, ...]) -> str:
    """One line: each fact, and whether `text` names it."""
    lowered = text.lower()
    found = [
        fact.claim + (": named ✓" if any(n.lower() in lowered for n in fact.names) else ": not named ✗")
        for fact in facts
    ]
    return "Fact check: " + "; ".join(found) + "."


def faithfulness_check(summary: str, source: str) -> str:
    """One line: the first sentence of `summary` that `source` does not state, and why (see
    exercises.unsupported_claims: a word-overlap proxy passes a false sentence made of the text's words)."""
    failed = unsupported_claims(summary, source)
    if not failed:
        return "Fact check: the text states every sentence of this summary."
    sentence, why = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"Fact check: the text does not state {sentence!r}{more}: {why.rstrip('.')}."


@dataclass(frozen=True)
class GuideVsYou:
    """The guide's printed output beside the learner's answer, as one display."""

    example: Example
    answer: str
    who: str  # e.g. "SmolLM2-135M-Instruct via replay"
    check: str  # the one-line fact check, or ""

    def __str__(self) -> str:
        lines = [
            f"The guide printed ({self.example.model} on the retired Akash Chat API):",
            self.example.printed,
            "",
            f"You got ({self.who}):",
            self.answer,
        ]
        if self.check:
            lines += ["", self.check]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: PrettyPrinter, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        def column(title: str, text: str) -> str:
            return (
                f'<td style="vertical-align:top;width:50%;padding:4px 10px"><b>{html.escape(title)}</b>'
                f'<div style="white-space:pre-wrap">{html.escape(text)}</div></td>'
            )

        rich = (
            '<table class="akash-nb-guide-vs-you" style="width:100%;table-layout:fixed"><tr>'
            + column(f"The guide printed ({self.example.model})", self.example.printed)
            + column(f"You got ({self.who})", self.answer)
            + "</tr></table>"
        )
        if self.check:
            rich += f"<p><b>{html.escape(self.check)}</b></p>"
        return {"text/plain": str(self), "text/html": rich}


def guide_vs_you(
    name: str, response: ChatCompletion | StreamResult, client: openai.OpenAI | None = None
) -> GuideVsYou:
    """The guide's printed output for example `name` (a key of EXAMPLES) beside `response`'s answer.

    `response` is what create() returns, or a stream collected by `streaming.collect_stream` (a cut one
    shows its text and why it stopped). An answer with no text (no choices, no message, a stream that
    failed before any text) raises its one-sentence AkashNBError; one that is only tool calls names them."""
    example = EXAMPLES[name]
    conn = connection_for(client) if client is not None else None
    if isinstance(response, StreamResult):
        if response.error is not None and not response.text:
            raise response.error
        answer = (response.text or response.note or "").strip()
        if response.error is not None:
            answer += f"\n(cut off: {response.error.sentence})"
        model = response.model or "no model named"
    else:
        read = answers.read(response, conn)
        if read.problem is not None:
            raise read.problem
        answer, model = read.shown.strip(), response.model
    who = model + (f" via {conn.name}" if conn is not None else "")
    if example.facts:
        check = fact_check(answer, example.facts)
    elif example.summarized is not None:
        check = faithfulness_check(answer, example.summarized)
    else:
        check = ""
    return GuideVsYou(example, answer, who, check)
