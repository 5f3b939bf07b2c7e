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
import sys

if sys.platform == "emscripten":  # a browser tab (Pyodide), where nothing takes a file lock
    import warnings

    warnings.filterwarnings("ignore", message="only soft file lock is available", category=UserWarning)

TYPE_CHECKING = False  # typing is not imported at run time: `import akash_nb` loads nothing it does not use
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it (the modules are private: the API is these names, `__all__`, and
# the modules lessons name, below)
_EXPORTS = {
    # connecting, and saying who answers
    "connection_values": "_clients",
    "client": "_clients",
    "choose_model": "_clients",
    "connection_for": "_core.connection",
    "served_models": "_core.connection",
    "last_latency": "_core.connection",
    "resolve": "_core.config",
    "Settings": "_core.config",
    "PROVIDERS": "_core.providers",
    "Secret": "_core.api_key",
    # showing answers and errors
    "show_answer": "_render",
    "show_error": "_render",
    "show": "_render",
    "show_http": "_wire",
    "guide_vs_you": "_guide",
    "table": "_tables",
    "bars": "_tables",
    "error_table_rows": "_tools.errors_doc",
    # what lessons end with
    "Conversation": "_conversation",
    "estimate_message_tokens": "_conversation",
    "Panel": "_widgets",
    "panel": "_widgets",
    "ChatBox": "_widgets",
    # errors: every one is an AkashNBError whose message is the sentence to show
    "explain": "_core.failures",
    "AkashNBError": "_core.exceptions",
    "ConfigError": "_core.exceptions",
    "RequestError": "_core.exceptions",
    "ParameterError": "_core.exceptions",
    "FileError": "_core.exceptions",
    "LocalServerError": "_core.exceptions",
    "NoRecordingError": "_core.exceptions",
    "ConversationError": "_conversation",
}
# A name whose defining function has another name there.
_RENAMED = {"error_table_rows": "table_rows"}

__all__ = [
    "PROVIDERS",
    "AkashNBError",
    "ChatBox",
    "ConfigError",
    "Conversation",
    "ConversationError",
    "FileError",
    "LocalServerError",
    "NoRecordingError",
    "Panel",
    "ParameterError",
    "RequestError",
    "Secret",
    "Settings",
    "bars",
    "choose_model",
    "client",
    "connection_for",
    "connection_values",
    "error_table_rows",
    "estimate_message_tokens",
    "explain",
    "guide_vs_you",
    "last_latency",
    "panel",
    "resolve",
    "served_models",
    "show",
    "show_answer",
    "show_error",
    "show_http",
    "table",
]

# The modules lessons and maintainers name (akash_nb.exercises.check_..., akash_nb.doctor.probe, ...): public,
# reachable as akash_nb.<name> without importing them first.
_PUBLIC_MODULES = frozenset({"exercises", "doctor", "generated_code", "cli"})

if TYPE_CHECKING:  # what editors and type checkers see: the real objects, never loaded at run time
    from . import cli as cli
    from . import doctor as doctor
    from . import exercises as exercises
    from . import generated_code as generated_code
    from ._clients import (
        choose_model as choose_model,
    )
    from ._clients import (
        client as client,
    )
    from ._clients import (
        connection_values as connection_values,
    )
    from ._conversation import (
        Conversation as Conversation,
    )
    from ._conversation import (
        ConversationError as ConversationError,
    )
    from ._conversation import (
        estimate_message_tokens as estimate_message_tokens,
    )
    from ._core.api_key import Secret as Secret
    from ._core.config import Settings as Settings
    from ._core.config import resolve as resolve
    from ._core.connection import (
        connection_for as connection_for,
    )
    from ._core.connection import (
        last_latency as last_latency,
    )
    from ._core.connection import (
        served_models as served_models,
    )
    from ._core.exceptions import (
        AkashNBError as AkashNBError,
    )
    from ._core.exceptions import (
        ConfigError as ConfigError,
    )
    from ._core.exceptions import (
        FileError as FileError,
    )
    from ._core.exceptions import (
        LocalServerError as LocalServerError,
    )
    from ._core.exceptions import (
        NoRecordingError as NoRecordingError,
    )
    from ._core.exceptions import (
        ParameterError as ParameterError,
    )
    from ._core.exceptions import (
        RequestError as RequestError,
    )
    from ._core.failures import explain as explain
    from ._core.providers import PROVIDERS as PROVIDERS
    from ._guide import guide_vs_you as guide_vs_you
    from ._render import show as show
    from ._render import show_answer as show_answer
    from ._render import show_error as show_error
    from ._tables import bars as bars
    from ._tables import table as table
    from ._tools.errors_doc import table_rows as error_table_rows
    from ._widgets import ChatBox as ChatBox
    from ._widgets import Panel as Panel
    from ._widgets import panel as panel
    from ._wire import show_http as show_http


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, _RENAMED.get(name, name))
    elif name in _PUBLIC_MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'akash_nb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _PUBLIC_MODULES)


if __import__("sys").platform == "emscripten":  # a browser tab: its own routes, and one sentence a failure
    importlib.import_module("._replay.in_tab", __name__).install()
    importlib.import_module("._error_display", __name__).install_error_display()
