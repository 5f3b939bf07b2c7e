""" "Guide vs you": the guide's own printed outputs beside the learner's answer, with a fact check where the
guide's prompt has facts."""

from __future__ import annotations

from helpers import completion  # a parsed ChatCompletion, as the SDK gives it

from akash_nb import _guide


def test_the_guides_answer_stands_beside_yours_naming_both_models():
    shown = _guide.guide_vs_you("completion", completion("A dragon lived there."))
    text = str(shown)
    assert "Meta-Llama-3-1-8B-Instruct-FP8" in text and "SmolLM2-135M-Instruct" in text
    assert text.index("beautiful kingdom") < text.index("A dragon lived there.")
    assert "<table" in shown._repr_mimebundle_()["text/html"]


def test_a_wrong_world_cup_answer_is_remarked():
    wrong = str(
        _guide.guide_vs_you("conversation-2", completion("The 2022 World Cup was won by the United States."))
    )
    assert wrong.splitlines()[-1] == (
        "Fact check: Argentina won: not named ✗; the final was in Lusail: not named ✗."
    )
    right = str(_guide.guide_vs_you("conversation", completion("Argentina beat France in Lusail.")))
    assert right.splitlines()[-1] == "Fact check: Argentina won: named ✓; the final was in Lusail: named ✓."


def test_a_summary_is_checked_against_the_text():
    shown = _guide.guide_vs_you("summary", completion("AI gives machines self-awareness."))
    line = str(shown).splitlines()[-1]
    assert "self" in line and "awareness" in line


def test_the_summary_fact_check_judges_claims_not_words():
    """Issue 21: the line under the guide-vs-you summary used word overlap, which a false sentence built from
    the text's own words passes; it now names the sentence the text does not state."""
    source = _guide.EXAMPLES["summary"].summarized
    false = "Artificial intelligence is the natural intelligence displayed by humans and animals."
    line = _guide.faithfulness_check(false, source)
    assert line.startswith("Fact check: the text does not state 'Artificial intelligence is the natural")
    assert "contrast" in line
    copied = source.split(". ")[0] + "."
    assert (
        _guide.faithfulness_check(copied, source)
        == "Fact check: the text states every sentence of this summary."
    )
