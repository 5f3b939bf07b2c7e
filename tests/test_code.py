"""akash_nb.generated_code: finding, checking and safely testing code that a model wrote."""

from __future__ import annotations

import os

from akash_nb.generated_code import check_syntax, extract_code, run_tests

REPLY = """Here is a function:

```python
def reverse_string(s):
    return s[::-1]
```

It uses slicing."""


def test_extracts_the_first_python_block():
    found = extract_code(REPLY)
    assert found.code == "def reverse_string(s):\n    return s[::-1]"
    assert found.closed


def test_an_untagged_block_counts_as_python_but_another_language_does_not():
    assert extract_code("```\nx = 1\n```").code == "x = 1"
    assert extract_code("```js\nlet x = 1\n```") is None
    assert extract_code("```js\nlet x\n```\n```py\ny = 2\n```").code == "y = 2"


def test_a_reply_cut_off_inside_the_block_is_marked_open():
    found = extract_code("Sure:\n```python\ndef f(s):\n    return s[")
    assert found.code == "def f(s):\n    return s["
    assert not found.closed


def test_no_block_gives_none():
    assert extract_code("Use s[::-1] to reverse a string.") is None


def test_syntax_check_names_the_line():
    assert check_syntax("def f():\n    return 1").ok
    bad = check_syntax("def f(:\n    pass")
    assert not bad.ok and bad.message.startswith("line 1")


def test_passing_and_failing_tests_in_a_subprocess():
    code = extract_code(REPLY).code
    passed = run_tests(code, 'assert reverse_string("abc") == "cba"')
    assert passed.passed and passed.output == "all tests passed"
    failed = run_tests(code, 'assert reverse_string("abc") == "abc", "not reversed"')
    assert not failed.passed and "not reversed" in failed.output


def test_a_hanging_candidate_is_stopped_at_the_time_limit():
    run = run_tests("while True:\n    pass", "", timeout=1)
    assert run.timed_out and not run.passed
    assert "stopped after 1 s" in str(run)


def test_the_candidate_cannot_touch_the_notebooks_folder(tmp_path):
    marker = tmp_path / "kept.txt"
    marker.write_text("mine")
    os.chdir(tmp_path)
    run_tests("import os\nos.remove('kept.txt')", "")
    assert marker.read_text() == "mine"  # it ran in its own temporary folder
