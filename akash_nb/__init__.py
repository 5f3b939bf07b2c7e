"""akash_nb: the helper package behind the akash-notebooks lessons.

import akash_nb
api_key, base_url = akash_nb.connection_values()      # shows provider, URL, key source; never the key

import openai
client = openai.OpenAI(api_key=api_key, base_url=base_url)       # the guide's own client block
model = akash_nb.choose_model(client, "Meta-Llama-3-1-8B-Instruct-FP8")
response = client.chat.completions.create(model=model, messages=[...])
akash_nb.guide_vs_you("completion", response, client)   # the guide's printed answer beside yours
"""

from __future__ import annotations

import importlib
import os
import sys

if sys.platform == "emscripten":  # a browser tab (Pyodide), where nothing takes a file lock
    import warnings

    warnings.filterwarnings("ignore", message="only soft file lock is available", category=UserWarning)

TYPE_CHECKING = False  # typing is not imported at run time: `import akash_nb` loads nothing it does not use
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS = {
    # connecting, and saying who answers
    "connection_values": "connect",
    "client": "connect",
    "choose_model": "connect",
    "connection_for": "connection",
    "served_models": "connection",
    "last_latency": "connection",
    "resolve": "config",
    "Settings": "config",
    "PROVIDERS": "providers",
    "Secret": "secret",
    # showing answers and errors
    "show_answer": "render",
    "show_error": "render",
    "show": "render",
    "show_http": "wire",
    "guide_vs_you": "guide",
    "table": "tables",
    "bars": "tables",
    # what lessons end with
    "Conversation": "conversation",
    "Panel": "widgets",
    "panel": "widgets",
    "ChatBox": "widgets",
    # errors: every one is an AkashNBError whose message is the sentence to show
    "explain": "errors",
    "AkashNBError": "exceptions",
    "ConfigError": "exceptions",
    "RequestError": "exceptions",
    "ParameterError": "exceptions",
    "FileError": "exceptions",
    "LocalServerError": "exceptions",
    "NoRecordingError": "exceptions",
    "ConversationError": "conversation",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 (a list, built from the table above)

# Every submodule, reachable as akash_nb.<name> without importing it first.
_SUBMODULES = frozenset(
    name.removesuffix(".py")
    for name in os.listdir(__path__[0])
    if name.endswith(".py") and not name.startswith("_")
)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'akash_nb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)


if __import__("sys").platform == "emscripten":  # a browser tab: its own routes, and one sentence a failure
    importlib.import_module(".in_tab", __name__).install()
    importlib.import_module(".error_display", __name__).install_error_display()
