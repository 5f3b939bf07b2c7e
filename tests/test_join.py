"""_engine/join.py, a student's side of a class server: what it reads of the address typed, and that it loads
none of the teacher's side (the class server, psutil, segno) on a student's laptop. Its checks against a
real server are in tests/test_hostile_text.py, tests/test_redirects.py and tests/test_share.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
from project import ROOT

from akash_nb._core.exceptions import ConfigError
from akash_nb._engine import join


def test_joining_loads_none_of_the_teachers_side():
    code = (
        "import sys, akash_nb._engine.join\n"
        "print(sorted({'akash_nb._engine.class_server', 'psutil', 'segno'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("10.0.0.5:8080", "http://10.0.0.5:8080/v1"),
        (" http://192.168.1.20:8080/v1/ ", "http://192.168.1.20:8080/v1"),
        ("https://class.example/api", "https://class.example/api"),
    ],
)
def test_the_address_typed_is_the_class_servers_api_url(typed, url):
    assert join.class_url(typed) == url


def test_what_is_not_an_address_is_one_sentence_and_nothing_is_written():
    with pytest.raises(ConfigError, match=r"is not a server address.*Nothing was written"):
        join.class_url("not a url")


def test_the_env_lines_name_the_class_server():
    settings = join.env_settings("http://10.0.0.5:8080/v1", "k" * 22)
    assert settings["AKASH_NB_PROVIDER"] == "openai-compatible"
    assert settings["AKASH_NB_BASE_URL"] == settings["AKASH_NB_CLASS_SERVER"] == "http://10.0.0.5:8080/v1"
