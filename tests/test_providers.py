"""The provider table: who the lessons can talk to, where they live, and what their keys look like."""

from __future__ import annotations

import pytest

from akash_nb._core import config, providers
from akash_nb._core.exceptions import ConfigError
from akash_nb._core.providers import PROVIDERS, RETIRED_ON


def test_the_table_has_five_providers_including_reserved_replay():
    assert list(PROVIDERS) == ["local", "akashml", "akash-chat", "openai-compatible", "replay", "browser"]
    assert all(name == p.name for name, p in PROVIDERS.items())


def resolve(provider: str, environ: dict[str, str], **kwargs) -> config.Settings:
    return config.resolve(provider, environ=environ, dotenv_path=None, prompt=lambda message: None, **kwargs)


def test_akashml_lives_at_its_api_and_needs_an_akml_key():
    settings = resolve("akashml", {"AKASHML_API_KEY": "akml-0123456789"})
    assert settings.base_url == "https://api.akashml.com/v1"
    assert settings.sources["api_key"] == "environment variable AKASHML_API_KEY"
    with pytest.raises(ConfigError, match="AkashML needs a key and none was found: set AKASHML_API_KEY"):
        resolve("akashml", {})
    with pytest.raises(ConfigError, match="does not start with akml-"):
        resolve("akashml", {"AKASHML_API_KEY": "sk-0123456789"})


def test_akash_chat_is_the_guides_url_and_says_it_was_retired():
    chat = PROVIDERS["akash-chat"]
    settings = resolve("akash-chat", {"AKASH_API_KEY": "sk-0123456789"})
    assert settings.base_url == "https://chatapi.akash.network/api/v1"  # as the guide writes it
    assert "retired on 2025-11-21" in chat.note
    assert chat.retired_on == RETIRED_ON
    with pytest.raises(ConfigError, match="set AKASH_API_KEY"):
        resolve("akash-chat", {})
    with pytest.raises(ConfigError, match="does not start with sk-"):
        resolve("akash-chat", {"AKASH_API_KEY": "akml-0123456789"})
    assert chat.fallback_models == ("Meta-Llama-3-1-8B-Instruct-FP8",)  # the guide's model


def test_local_and_replay_are_started_here_and_need_no_key():
    for name in ("local", "replay"):
        settings = resolve(name, {"AKASH_NB_BASE_URL": "http://127.0.0.1:9/v1"})
        assert settings.base_url is None and settings.sources["base_url"].startswith("started on demand")
        assert settings.api_key is None and settings.sources["api_key"] == "none needed"
    assert PROVIDERS["local"].fallback_models == (providers.LOCAL_MODEL_NAME,)


def test_openai_compatible_takes_the_users_url_and_an_optional_key():
    without = resolve("openai-compatible", {"AKASH_NB_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert without.base_url == "http://127.0.0.1:8000/v1" and without.api_key is None
    assert without.sources["api_key"] == "none needed"
    keyed = resolve(
        "openai-compatible",
        {"AKASH_NB_BASE_URL": "http://127.0.0.1:8000/v1", "AKASH_NB_API_KEY": "anything-goes"},
    )
    assert keyed.api_key.reveal() == "anything-goes"
    with pytest.raises(ConfigError, match="AKASH_NB_BASE_URL"):
        resolve("openai-compatible", {})


def test_get_returns_a_provider_or_lists_the_valid_names():
    assert providers.get("akashml") is PROVIDERS["akashml"]
    with pytest.raises(ValueError, match="local, akashml, akash-chat, openai-compatible, replay, browser"):
        providers.get("openai")


@pytest.mark.parametrize(
    ("key", "owner"),
    # sk- names no provider: OpenAI, LiteLLM, vLLM and the retired Akash endpoint all use it
    [("akml-abc123", "akashml"), ("sk-abc123", None), ("gsk_abc", None), ("abc", None)],
)
def test_owner_of_key_goes_by_the_keys_shape(key, owner):
    found = providers.owner_of_key(key)
    assert (found.name if found else None) == owner
