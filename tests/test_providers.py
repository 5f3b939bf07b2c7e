"""The provider table: who the lessons can talk to, where they live, and what their keys look like."""

from __future__ import annotations

import pytest

from akash_nb import providers
from akash_nb.providers import PROVIDERS, RETIRED_ON


def test_the_table_has_five_providers_including_reserved_replay():
    assert list(PROVIDERS) == ["local", "akashml", "akash-chat", "openai-compatible", "replay"]
    assert all(name == p.name for name, p in PROVIDERS.items())


def test_akashml_lives_at_its_api_and_needs_an_akml_key():
    akashml = PROVIDERS["akashml"]
    assert akashml.base_url == "https://api.akashml.com/v1"
    assert akashml.key_env == ("AKASHML_API_KEY",)
    assert akashml.key_prefix == "akml-"
    assert akashml.needs_key


def test_akash_chat_is_the_guides_url_and_says_it_was_retired():
    chat = PROVIDERS["akash-chat"]
    assert chat.base_url == "https://chatapi.akash.network/api/v1"  # as the guide writes it
    assert RETIRED_ON == "2025-11-21"
    assert "retired on 2025-11-21" in chat.note
    assert chat.retired_on == RETIRED_ON
    assert chat.key_env == ("AKASH_API_KEY",)
    assert chat.key_prefix == "sk-"
    assert chat.fallback_models == ("Meta-Llama-3-1-8B-Instruct-FP8",)  # the guide's model


def test_local_and_replay_are_started_here_and_need_no_key():
    for name in ("local", "replay"):
        assert PROVIDERS[name].started_here
        assert PROVIDERS[name].base_url is None
        assert not PROVIDERS[name].needs_key
    assert PROVIDERS["local"].fallback_models == (providers.LOCAL_MODEL_NAME,)


def test_openai_compatible_takes_the_users_url_and_an_optional_key():
    custom = PROVIDERS["openai-compatible"]
    assert custom.base_url is None and not custom.started_here
    assert custom.key_env == ("AKASH_NB_API_KEY",)
    assert not custom.needs_key


def test_get_returns_a_provider_or_lists_the_valid_names():
    assert providers.get("akashml") is PROVIDERS["akashml"]
    with pytest.raises(ValueError, match="local, akashml, akash-chat, openai-compatible, replay"):
        providers.get("openai")


@pytest.mark.parametrize(
    ("key", "owner"),
    # sk- names no provider: OpenAI, LiteLLM, vLLM and the retired Akash endpoint all use it
    [("akml-abc123", "akashml"), ("sk-abc123", None), ("gsk_abc", None), ("abc", None)],
)
def test_owner_of_key_goes_by_the_keys_shape(key, owner):
    found = providers.owner_of_key(key)
    assert (found.name if found else None) == owner
