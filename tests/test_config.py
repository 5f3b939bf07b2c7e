"""Where the provider, URL, key and model come from (_core/config.py), step by step of the documented order:
argument, environment, .env (nearest, from the cwd upward), prompt, then the embedded local model."""

from __future__ import annotations

import getpass
import io
import os
from pathlib import Path

import pytest

from akash_nb._core import config
from akash_nb._core.api_key import Secret
from akash_nb._core.exceptions import ConfigError

AKML = "akml-" + "0123456789abcdef"
SK = "sk-" + "0123456789abcdef"


def write_env(folder: Path, **values: str) -> Path:
    path = folder / ".env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def assert_one_sentence(text: str) -> None:
    assert "\n" not in text and text[0].isupper() and text.endswith("."), text


def never_asked(message: str) -> str:
    raise AssertionError(f"prompted: {message}")


@pytest.fixture
def no_getpass(monkeypatch):
    monkeypatch.setattr(getpass, "getpass", never_asked)


@pytest.fixture
def restore_key_env(monkeypatch):
    """The prompt step writes AKASHML_API_KEY into os.environ; undo that after the test."""
    monkeypatch.setenv("AKASHML_API_KEY", "placeholder")
    monkeypatch.delenv("AKASHML_API_KEY")


# --- 1-3: argument beats environment beats .env -------------------------------------------------------------


def test_an_argument_beats_the_environment_and_the_dotenv(monkeypatch, tmp_path):
    monkeypatch.setenv("AKASH_NB_MODEL", "from-env")
    write_env(tmp_path, AKASH_NB_MODEL="from-file")
    settings = config.resolve(model="from-argument")
    assert settings.model == "from-argument"
    assert settings.sources["model"] == "the model= argument"


def test_the_environment_beats_the_dotenv(monkeypatch, tmp_path):
    monkeypatch.setenv("AKASH_NB_MODEL", "from-env")
    write_env(tmp_path, AKASH_NB_MODEL="from-file")
    settings = config.resolve()
    assert settings.model == "from-env"
    assert settings.sources["model"] == "environment variable AKASH_NB_MODEL"


def test_the_dotenv_in_the_working_directory_is_read(tmp_path):
    path = write_env(tmp_path, AKASH_NB_MODEL="from-file")
    settings = config.resolve()
    assert settings.model == "from-file"
    assert settings.sources["model"] == f"AKASH_NB_MODEL in {path}"


def test_the_dotenv_is_found_in_a_parent_folder(monkeypatch, tmp_path):
    path = write_env(tmp_path, AKASH_NB_MODEL="from-parent")
    deep = tmp_path / "notebooks" / "lesson"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert config.dotenv_file() == path
    assert config.dotenv_file(deep) == path
    assert config.resolve().sources["model"] == f"AKASH_NB_MODEL in {path}"


def test_the_nearest_dotenv_wins(monkeypatch, tmp_path):
    write_env(tmp_path, AKASH_NB_MODEL="from-parent")
    child = tmp_path / "notebooks"
    child.mkdir()
    write_env(child, AKASH_NB_MODEL="from-child")
    monkeypatch.chdir(child)
    assert config.resolve().model == "from-child"


def test_the_dotenv_is_read_but_never_loaded_into_the_environment(tmp_path):
    write_env(tmp_path, AKASHML_API_KEY=AKML, AKASH_NB_MODEL="from-file")
    config.resolve()
    assert "AKASHML_API_KEY" not in os.environ and "AKASH_NB_MODEL" not in os.environ


def test_blank_values_count_as_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("AKASH_NB_MODEL", "  ")
    write_env(tmp_path, AKASH_NB_MODEL="from-file")
    assert config.resolve().model == "from-file"


def test_the_key_follows_the_same_order(monkeypatch, tmp_path):
    write_env(tmp_path, AKASHML_API_KEY=AKML + "file")
    assert config.resolve().sources["api_key"] == f"AKASHML_API_KEY in {tmp_path / '.env'}"
    monkeypatch.setenv("AKASHML_API_KEY", AKML + "env")
    settings = config.resolve()
    assert settings.api_key == Secret(AKML + "env")
    assert settings.sources["api_key"] == "environment variable AKASHML_API_KEY"
    settings = config.resolve(api_key=AKML + "arg")
    assert settings.api_key == Secret(AKML + "arg")
    assert settings.sources["api_key"] == "the api_key= argument"


def test_environ_and_dotenv_path_can_be_given(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_env(elsewhere, AKASHML_API_KEY=AKML)
    settings = config.resolve(environ={"AKASH_NB_MODEL": "m"}, dotenv_path=path)
    assert (settings.provider.name, settings.model) == ("akashml", "m")


# --- 5: nothing configured: the embedded model --------------------------------------------------------------


def test_with_nothing_configured_the_provider_is_the_embedded_model(no_getpass):
    settings = config.resolve()
    assert settings.provider.name == "local"
    assert settings.sources["provider"] == "default (no provider configured)"
    assert settings.base_url is None and settings.api_key is None and settings.model is None
    assert settings.key_source == "none needed"


# --- provider inference -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "provider"),
    [
        ("AKASH_NB_BASE_URL", "http://127.0.0.1:9/v1", "openai-compatible"),
        ("AKASHML_API_KEY", AKML, "akashml"),
        ("AKASH_API_KEY", SK, "akash-chat"),
    ],
)
def test_the_provider_is_inferred_from_what_is_set(monkeypatch, tmp_path, variable, value, provider):
    monkeypatch.setenv(variable, value)
    settings = config.resolve()
    assert settings.provider.name == provider
    assert settings.sources["provider"] == f"inferred from environment variable {variable}"

    monkeypatch.delenv(variable)
    path = write_env(tmp_path, **{variable: value})
    settings = config.resolve()
    assert settings.provider.name == provider
    assert settings.sources["provider"] == f"inferred from {variable} in {path}"


def test_a_base_url_beats_a_key_in_the_same_layer(monkeypatch):
    monkeypatch.setenv("AKASHML_API_KEY", AKML)
    monkeypatch.setenv("AKASH_NB_BASE_URL", "http://127.0.0.1:9/v1")
    assert config.resolve().provider.name == "openai-compatible"


def test_inference_goes_layer_by_layer(monkeypatch, tmp_path):
    """The environment's AkashML key beats a base URL that only the .env has."""
    monkeypatch.setenv("AKASHML_API_KEY", AKML)
    write_env(tmp_path, AKASH_NB_BASE_URL="http://127.0.0.1:9/v1")
    assert config.resolve().provider.name == "akashml"


def test_a_named_provider_beats_inference(monkeypatch):
    monkeypatch.setenv("AKASHML_API_KEY", AKML)
    monkeypatch.setenv("AKASH_NB_PROVIDER", "local")
    settings = config.resolve()
    assert settings.provider.name == "local"
    assert settings.sources["provider"] == "environment variable AKASH_NB_PROVIDER"
    assert config.resolve("akashml").sources["provider"] == "the provider= argument"


def test_provider_names_are_case_and_space_insensitive(monkeypatch):
    monkeypatch.setenv("AKASH_NB_PROVIDER", " AkashML ")
    monkeypatch.setenv("AKASHML_API_KEY", AKML)
    assert config.resolve().provider.name == "akashml"


def test_a_key_argument_infers_its_provider_by_shape():
    settings = config.resolve(api_key=AKML)
    assert settings.provider.name == "akashml"
    assert "api_key= argument" in settings.sources["provider"]
    # sk- keys come from OpenAI, LiteLLM, vLLM deployments and the retired endpoint alike: say which
    with pytest.raises(ConfigError, match="its shape does not say which"):
        config.resolve(api_key=SK)


def test_a_key_argument_with_a_base_url_argument_is_for_that_server():
    settings = config.resolve(base_url="http://127.0.0.1:9/v1", api_key="anything")
    assert settings.provider.name == "openai-compatible"
    assert settings.api_key == Secret("anything")


def test_a_key_argument_of_unknown_shape_and_no_provider_is_a_sentence():
    with pytest.raises(ConfigError) as caught:
        config.resolve(api_key="0123456789")
    assert_one_sentence(caught.value.sentence)
    assert "provider=" in caught.value.sentence


# --- 4: the prompt ------------------------------------------------------------------------------------------


def test_a_keyed_provider_without_a_key_prompts_and_keeps_the_answer(monkeypatch, restore_key_env):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "akashml")
    asked: list[str] = []
    settings = config.resolve(prompt=lambda message: asked.append(message) or f" {AKML}\n")
    assert len(asked) == 1 and "AKASHML_API_KEY" in asked[0]
    assert settings.api_key == Secret(AKML)
    assert settings.sources["api_key"].startswith("typed at the prompt")
    assert os.environ["AKASHML_API_KEY"] == AKML  # cleaned, and kept for this process
    again = config.resolve(prompt=never_asked)
    assert again.sources["api_key"] == "environment variable AKASHML_API_KEY"


def test_the_prompt_is_not_used_when_a_key_is_found(monkeypatch, tmp_path):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "akashml")
    write_env(tmp_path, AKASHML_API_KEY=AKML)
    assert config.resolve(prompt=never_asked).api_key == Secret(AKML)


@pytest.mark.parametrize("provider", ["local", "replay"])
def test_providers_without_keys_never_prompt(provider):
    assert config.resolve(provider, prompt=never_asked).api_key is None


def test_openai_compatible_without_a_key_does_not_prompt(monkeypatch):
    monkeypatch.setenv("AKASH_NB_BASE_URL", "http://127.0.0.1:9/v1")
    settings = config.resolve(prompt=never_asked)
    assert settings.api_key is None and settings.key_source == "none needed"


def test_an_empty_answer_at_the_prompt_is_a_sentence_and_not_kept(monkeypatch, restore_key_env):
    with pytest.raises(ConfigError) as caught:
        config.resolve("akashml", prompt=lambda message: "  ")
    assert_one_sentence(caught.value.sentence)
    assert "typed at the prompt" in caught.value.sentence and "empty" in caught.value.sentence
    assert "AKASHML_API_KEY" not in os.environ


def test_a_wrong_key_at_the_prompt_is_not_kept(restore_key_env):
    with pytest.raises(ConfigError):
        config.resolve("akashml", prompt=lambda message: SK)
    assert "AKASHML_API_KEY" not in os.environ


def test_under_ci_there_is_no_prompt_but_one_sentence_naming_the_variable(monkeypatch, no_getpass):
    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr("sys.stdin", _Terminal())
    assert config.can_prompt() is False
    with pytest.raises(ConfigError) as caught:
        config.resolve("akashml")
    assert_one_sentence(caught.value.sentence)
    assert "AKASHML_API_KEY" in caught.value.sentence


def test_without_a_terminal_there_is_no_prompt(monkeypatch, no_getpass):
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert config.can_prompt() is False
    with pytest.raises(ConfigError, match="AKASH_API_KEY"):
        config.resolve("akash-chat")


def test_in_a_terminal_outside_ci_the_masked_prompt_is_used(monkeypatch, restore_key_env):
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr(getpass, "getpass", lambda message: AKML)
    assert config.can_prompt() is True
    assert config.resolve("akashml").sources["api_key"] == "typed at the prompt"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- sources say where, never what --------------------------------------------------------------------------


def test_sources_say_where_and_never_contain_the_key(monkeypatch, tmp_path, restore_key_env):
    path = write_env(tmp_path, AKASHML_API_KEY=AKML)
    cases = [
        config.resolve(),
        config.resolve(api_key=AKML),
        config.resolve("akashml", environ={"AKASHML_API_KEY": AKML}),
        config.resolve("akashml", environ={}, dotenv_path=tmp_path / "none", prompt=lambda m: AKML),
    ]
    assert cases[0].sources["api_key"] == f"AKASHML_API_KEY in {path}"
    for settings in cases:
        text = repr(settings) + str(settings.sources)
        assert AKML not in text and "0123456789" not in text
        assert settings.api_key.reveal() == AKML


# --- key cleaning -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        (f'"{AKML}"', "(surrounding quotes removed)"),
        (f"'{AKML}'", "(surrounding quotes removed)"),
        (f"  {AKML} ", "(surrounding spaces removed)"),
        (f"{AKML}\n", "(surrounding spaces removed)"),
        (f" '{AKML}'\r\n", "(surrounding quotes removed)"),
        (AKML, ""),
    ],
)
def test_pasting_mistakes_are_cleaned_and_reported(monkeypatch, raw, note):
    monkeypatch.setenv("AKASHML_API_KEY", raw)
    settings = config.resolve()
    assert settings.api_key == Secret(AKML)
    assert settings.sources["api_key"] == f"environment variable AKASHML_API_KEY {note}".strip()


def test_quotes_inside_a_dotenv_value_are_cleaned(tmp_path):
    write_env(tmp_path, AKASHML_API_KEY=f"\"'{AKML}'\"")  # dotenv removes one pair, we remove the other
    settings = config.resolve()
    assert settings.api_key == Secret(AKML)
    assert settings.sources["api_key"].endswith("(surrounding quotes removed)")


@pytest.mark.parametrize("raw", ["akml-0123 4567", "akml-0123\n4567", "akml-\t0123"])
def test_a_space_or_line_break_inside_the_key_is_a_sentence(monkeypatch, raw):
    monkeypatch.setenv("AKASHML_API_KEY", raw)
    with pytest.raises(ConfigError) as caught:
        config.resolve()
    assert_one_sentence(caught.value.sentence)
    assert "environment variable AKASHML_API_KEY" in caught.value.sentence
    assert "0123" not in caught.value.sentence


def test_quotes_around_nothing_are_an_empty_key(monkeypatch):
    monkeypatch.setenv("AKASHML_API_KEY", '""')
    with pytest.raises(ConfigError, match="is empty"):
        config.resolve()


# --- keys given to the wrong provider -----------------------------------------------------------------------


def test_an_sk_key_for_akashml_is_a_sentence_naming_the_shape_and_the_other_way(monkeypatch):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "akashml")
    monkeypatch.setenv("AKASHML_API_KEY", SK)
    with pytest.raises(ConfigError) as caught:
        config.resolve()
    sentence = caught.value.sentence
    assert_one_sentence(sentence)
    assert "does not start with akml-" in sentence and "AKASH_NB_BASE_URL" in sentence
    assert SK not in sentence


def test_an_akashml_key_for_akash_chat_is_a_sentence_naming_akashml(monkeypatch):
    monkeypatch.setenv("AKASH_API_KEY", AKML)
    with pytest.raises(ConfigError) as caught:
        config.resolve()
    sentence = caught.value.sentence
    assert_one_sentence(sentence)
    assert "AKASH_NB_PROVIDER=akashml" in sentence
    assert AKML not in sentence


def test_any_key_shape_is_fine_for_your_own_server(monkeypatch):
    monkeypatch.setenv("AKASH_NB_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AKASH_NB_API_KEY", SK)
    assert config.resolve().api_key == Secret(SK)


# --- providers and URLs -------------------------------------------------------------------------------------


def test_an_unknown_provider_lists_the_valid_names_and_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "openai")
    with pytest.raises(ConfigError) as caught:
        config.resolve()
    sentence = caught.value.sentence
    assert_one_sentence(sentence)
    assert "'openai'" in sentence and "environment variable AKASH_NB_PROVIDER" in sentence
    for name in ("local", "akashml", "akash-chat", "openai-compatible", "replay"):
        assert name in sentence


@pytest.mark.parametrize(
    "url", ["localhost:8000/v1", "ftp://my-server/v1", "http://", "my-server", "http://my server/v1"]
)
def test_a_malformed_base_url_is_a_sentence_with_an_example(monkeypatch, url):
    monkeypatch.setenv("AKASH_NB_BASE_URL", url)
    with pytest.raises(ConfigError) as caught:
        config.resolve()
    assert_one_sentence(caught.value.sentence)
    assert "environment variable AKASH_NB_BASE_URL" in caught.value.sentence
    assert "http://my-server:8000/v1" in caught.value.sentence


def test_openai_compatible_without_a_url_is_a_sentence(no_getpass):
    with pytest.raises(ConfigError) as caught:
        config.resolve("openai-compatible")
    assert_one_sentence(caught.value.sentence)
    assert "AKASH_NB_BASE_URL" in caught.value.sentence


def test_the_base_url_is_trimmed_and_its_source_recorded(tmp_path):
    path = write_env(tmp_path, AKASH_NB_BASE_URL=" http://127.0.0.1:8000/v1/ ")
    settings = config.resolve()
    assert settings.base_url == "http://127.0.0.1:8000/v1"
    assert settings.sources["base_url"] == f"AKASH_NB_BASE_URL in {path}"


def test_a_remote_provider_uses_its_default_url_unless_one_is_given(monkeypatch):
    monkeypatch.setenv("AKASHML_API_KEY", AKML)
    settings = config.resolve()
    assert settings.base_url == "https://api.akashml.com/v1"
    assert settings.sources["base_url"] == "provider default"
    proxied = config.resolve("akashml", base_url="http://127.0.0.1:9/v1")
    assert proxied.base_url == "http://127.0.0.1:9/v1"
    assert proxied.sources["base_url"] == "the base_url= argument"


def test_the_local_provider_runs_its_own_server_and_says_a_url_is_ignored(monkeypatch):
    monkeypatch.setenv("AKASH_NB_BASE_URL", "http://127.0.0.1:9/v1")
    settings = config.resolve("local")
    assert settings.base_url is None
    assert settings.sources["base_url"].startswith("started on demand")
    assert "AKASH_NB_BASE_URL is ignored" in settings.sources["base_url"]


def test_the_model_is_trimmed_or_left_to_the_served_models(monkeypatch):
    assert config.resolve().sources["model"] == "chosen from the provider's served models"
    monkeypatch.setenv("AKASH_NB_MODEL", " SmolLM2-135M-Instruct \n")
    assert config.resolve().model == "SmolLM2-135M-Instruct"


def test_a_url_set_for_your_own_server_never_receives_an_akashml_key(monkeypatch, tmp_path):
    monkeypatch.setenv("AKASH_NB_PROVIDER", "akashml")
    monkeypatch.setenv("AKASHML_API_KEY", AKML)
    write_env(tmp_path, AKASH_NB_BASE_URL="http://my-server:8000/v1")
    settings = config.resolve()
    assert settings.base_url == "https://api.akashml.com/v1"
    assert "AKASH_NB_BASE_URL" in settings.sources["base_url"] and "ignored" in settings.sources["base_url"]


def test_a_kernel_whose_front_end_cannot_answer_gets_the_sentence_not_a_hang(monkeypatch):
    # IPython's own signal for "no one can type here" (nbconvert, nbval): StdinNotImplementedError.
    from IPython.core.error import StdinNotImplementedError

    def refuse(message):
        raise StdinNotImplementedError("raw_input was called, but this frontend does not support input")

    monkeypatch.setattr(getpass, "getpass", refuse)
    monkeypatch.setenv("AKASH_NB_PROVIDER", "akashml")
    with pytest.raises(ConfigError, match="set AKASHML_API_KEY in the environment"):
        config.resolve(prompt=config._getpass)


@pytest.mark.parametrize("module", ["akash_nb._core.config", "akash_nb._core.parameters", "akash_nb.cli"])
def test_configuration_and_the_parameter_checkers_load_without_the_sdk(module):
    """Settings (and the checkers every layer uses, and the command line) load without openai or httpx2."""
    import subprocess  # only this test starts a fresh interpreter
    import sys

    root = str(Path(__file__).resolve().parent.parent)  # -I: no PYTHONPATH stand-ins, no site hooks
    code = f"import sys; sys.path.insert(0, {root!r}); import {module}; "
    code += "print(sorted({'openai', 'httpx2'} & set(sys.modules)))"
    shown = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]", f"{module} loads {shown.stdout.strip()}"
