"""The providers a lesson can talk to, in one table: where each lives, which key it takes, and which model
to fall back on when the one a lesson asks for is not served there."""

from __future__ import annotations

from dataclasses import dataclass

RETIRED_ON = "2025-11-21"
LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    base_url: str | None  # None: decided at run time (a local server's port, or the user's URL)
    key_env: tuple[str, ...]  # environment variables that may hold its key, first wins
    key_prefix: str | None  # the shape of this provider's keys, to catch a key given to the wrong provider
    fallback_models: tuple[str, ...]  # used, in order, when the requested model is not served
    needs_key: bool
    note: str = ""
    started_here: bool = False  # a server this package starts itself; its URL is decided at run time
    retired_on: str | None = None  # the date the service stopped answering, if it has


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            name="local",
            title="embedded SmolLM2-135M (llama.cpp on this machine)",
            base_url=None,
            key_env=(),
            key_prefix=None,
            fallback_models=(LOCAL_MODEL_NAME,),
            needs_key=False,
            note="No key, no network: a small real model served on 127.0.0.1.",
            started_here=True,
        ),
        Provider(
            name="akashml",
            title="AkashML",
            base_url="https://api.akashml.com/v1",
            key_env=("AKASHML_API_KEY",),
            key_prefix="akml-",
            fallback_models=(
                "deepseek-ai/DeepSeek-V3.2",
                "meta-llama/Llama-3.3-70B-Instruct",
                "Qwen/Qwen3-30B-A3B",
            ),
            needs_key=True,
            note="The paid successor of the Akash Chat API; keys start with akml-.",
        ),
        Provider(
            name="akash-chat",
            title="Akash Chat API (retired)",
            base_url="https://chatapi.akash.network/api/v1",
            key_env=("AKASH_API_KEY",),
            key_prefix="sk-",
            fallback_models=("Meta-Llama-3-1-8B-Instruct-FP8",),
            needs_key=True,
            note=f"The guide's endpoint, retired on {RETIRED_ON}; kept so old keys get a clear answer.",
            retired_on=RETIRED_ON,
        ),
        Provider(
            name="openai-compatible",
            title="your OpenAI-compatible server",
            base_url=None,
            key_env=("AKASH_NB_API_KEY",),
            key_prefix=None,
            fallback_models=(),
            needs_key=False,
            note="Any URL that serves /v1/chat/completions: vLLM or llama.cpp on Akash, Ollama, ...",
        ),
        Provider(
            name="replay",
            title="replayed answers",
            base_url=None,
            key_env=(),
            key_prefix=None,
            fallback_models=(),
            needs_key=False,
            note="Answers recorded earlier from a real provider, replayed offline for tests.",
            started_here=True,
        ),
        Provider(
            name="browser",
            title="in-browser model",
            base_url="http://in-browser.localhost/v1",  # answered in the tab by bridge.js (in_browser)
            key_env=(),
            key_prefix=None,
            fallback_models=(LOCAL_MODEL_NAME,),
            needs_key=False,
            note="No key, no install: SmolLM2-135M run by wllama in the browser tab (the lessons' web site).",
        ),
    )
}


def get(name: str) -> Provider:
    """The provider called `name`, or a ValueError that lists the valid names."""
    try:
        return PROVIDERS[name]
    except KeyError:
        valid = ", ".join(PROVIDERS)
        raise ValueError(f"Unknown provider {name!r}: choose one of {valid}.") from None


# sk- is shared by OpenAI, LiteLLM proxies, vLLM deployments and the retired Akash endpoint: it names no one.
SHARED_PREFIXES = ("sk-",)


def owner_of_key(key: str) -> Provider | None:
    """The provider whose keys, and only whose keys, look like `key` (akml- is AkashML's)."""
    for provider in PROVIDERS.values():
        prefix = provider.key_prefix
        if prefix and prefix not in SHARED_PREFIXES and key.startswith(prefix):
            return provider
    return None
