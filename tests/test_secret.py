"""A Secret holds a key so that printing, formatting or pickling it cannot leak the key."""

from __future__ import annotations

import pickle

import pytest

from akash_nb.secret import Secret

KEY = "akml-" + "0123456789abcdef"


def test_reveal_is_the_only_way_to_the_value():
    assert Secret(KEY).reveal() == KEY


@pytest.mark.parametrize(
    "show",
    [repr, str, format, lambda s: f"{s}", lambda s: f"{s!r}", lambda s: f"{s:>40}",
     lambda s: "%s" % s,  # noqa: UP031 (old-style formatting must be masked too)
     lambda s: "{}".format(s),  # noqa: UP032
     lambda s: str([s]), lambda s: str({"key": s})],
)
def test_every_way_of_printing_it_is_masked(show):
    text = show(Secret(KEY))
    assert KEY not in text
    assert "0123456789" not in text
    assert "****" in text


def test_the_mask_keeps_a_known_prefix_only():
    assert repr(Secret(KEY)) == "Secret(akml-****)"
    assert repr(Secret("sk-0123456789")) == "Secret(sk-****)"
    assert repr(Secret("0123456789")) == "Secret(****)"


def test_pickling_is_refused():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(KEY))


def test_equality_compares_values_and_only_with_secrets():
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) != Secret(KEY + "x")
    assert Secret(KEY) != KEY
    assert hash(Secret(KEY)) == hash(Secret(KEY))
    assert Secret("ключ") == Secret("ключ")  # not only ASCII


def test_it_has_no_instance_dict_to_dump():
    with pytest.raises(TypeError):
        vars(Secret(KEY))
