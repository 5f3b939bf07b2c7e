"""akash_nb: the helper package behind the akash-notebooks lessons.

    import akash_nb
    api_key, base_url = akash_nb.connection_values()      # shows provider, URL, key source; never the key

    import openai
    client = openai.OpenAI(api_key=api_key, base_url=base_url)       # the guide's own client block
    model = akash_nb.choose_model(client, "Meta-Llama-3-1-8B-Instruct-FP8")
    response = client.chat.completions.create(model=model, messages=[...])
    akash_nb.guide_vs_you("completion", response, client)   # the guide's printed answer beside yours

Names are imported on first use, so `import akash_nb` stays cheap (the OpenAI SDK is not loaded until a
client is made).
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "client": "client",
    "connection_values": "client",
    "connection": "client",
    "choose_model": "client",
    "served_models": "client",
    "last_latency": "client",
    "resolve": "config",
    "Settings": "config",
    "PROVIDERS": "providers",
    "Secret": "secret",
    "AkashNBError": "errors",
    "ConfigError": "errors",
    "explain": "errors",
    "show_answer": "render",
    "show_error": "render",
    "show": "render",
    "Conversation": "conversation",
    "Panel": "widgets",
    "panel": "widgets",
    "ChatBox": "widgets",
    "show_http": "wire",
    "guide_vs_you": "guide",
}

__all__ = sorted(_EXPORTS)


# submodules a lesson reaches as akash_nb.<name>
_MODULES = {"code", "doctor", "exercises", "guide", "providers", "render", "widgets", "wire"}


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'akash_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """Importing the submodule `akash_nb.client` would make the package attribute `client` that module,
    hiding the function `akash_nb.client()`. Exported names win over same-named submodules."""

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
