"""Show the wire: the HTTP request a call sent, the JSON that came back, and the same request as `curl`.

raw = client.chat.completions.with_raw_response.create(model=model, messages=[...])
akash_nb.show_http(raw)          # request JSON, response JSON, curl (key masked)
response = raw.parse()           # the usual ChatCompletion
"""

from __future__ import annotations

import html
import json
import shlex
from dataclasses import dataclass
from typing import Any

from IPython.lib.pretty import PrettyPrinter

from ._core import compat
from ._core.api_key import Secret
from ._core.connection import connection_for_url
from ._core.exceptions import INPUT, AkashNBError, table_error

SHOWN_HEADERS = ("content-type",)  # the SDK's other headers (versions, OS, retry count) teach nothing here


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its answer, as they went over the wire (the key masked)."""

    method: str
    url: str
    headers: dict[str, str]  # the request headers worth showing, Authorization masked
    request: Any  # the request's JSON body (None when it had none)
    status: int
    content_type: str
    response: Any  # the answer's JSON body (or its text when it is not JSON)
    key_variable: str  # the environment variable the curl command reads the key from

    def curl(self) -> str:
        """The same request as a curl command a terminal can run (with the key in $key_variable)."""
        lines = [f"curl {shlex.quote(self.url)}"]
        if self.method != ("POST" if self.request is not None else "GET"):
            lines.append(f"-X {self.method}")
        lines.append("-H 'Content-Type: application/json'")
        lines.append(f'-H "Authorization: Bearer ${self.key_variable}"')
        if self.request is not None:
            lines.append("-d " + shlex.quote(json.dumps(self.request, ensure_ascii=False)))
        return " \\\n  ".join(lines)

    def request_text(self) -> str:
        head = [f"{self.method} {self.url}"] + [f"{name}: {value}" for name, value in self.headers.items()]
        body = "" if self.request is None else "\n\n" + _pretty(self.request)
        return "\n".join(head) + body

    def response_text(self) -> str:
        return f"HTTP {self.status} ({self.content_type})\n\n" + _pretty(self.response)

    def __str__(self) -> str:
        return (
            f"Request:\n{self.request_text()}\n\nResponse:\n{self.response_text()}\n\n"
            f"The same request with curl (key from ${self.key_variable}):\n{self.curl()}"
        )

    def _repr_pretty_(self, printer: PrettyPrinter, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        def block(title: str, text: str, opened: bool) -> str:
            return (
                f'<details class="akash-nb-wire"{" open" if opened else ""}><summary><b>{title}</b>'
                f"</summary><pre>{html.escape(text)}</pre></details>"
            )

        rich = (
            block("Request that went out", self.request_text(), True)
            + block("Response that came back", self.response_text(), False)
            + block(f"The same request with curl (key from ${self.key_variable})", self.curl(), False)
        )
        return {"text/plain": str(self), "text/html": rich}


def _pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _json_or_text(data: bytes | str) -> Any:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


def _key_variable(base_url: str) -> str:
    """The variable a user of this provider keeps the key in (AKASHML_API_KEY for AkashML), else API_KEY."""
    conn = connection_for_url(base_url)
    return conn.provider.key_env[0] if conn is not None and conn.provider.key_env else "API_KEY"


def exchange(raw: compat.RawResponse) -> Exchange:
    """The `Exchange` behind a `with_raw_response` result."""
    if not compat.is_raw_response(raw):
        raise table_error(INPUT, "show-http-not-raw", AkashNBError, type=type(raw).__name__)
    request, response = raw.http_request, raw.http_response
    headers = {
        name.title(): value for name, value in request.headers.items() if name.lower() in SHOWN_HEADERS
    }
    authorization = request.headers.get("authorization", "")
    if authorization:
        headers["Authorization"] = "Bearer " + Secret(authorization.removeprefix("Bearer ")).masked
    url = str(request.url)
    return Exchange(
        method=request.method,
        url=url,
        headers=headers,
        request=_json_or_text(request.content),
        status=response.status_code,
        content_type=response.headers.get("content-type", "none").split(";")[0],
        response=_json_or_text(response.content),
        key_variable=_key_variable(url),
    )


def show_http(raw: compat.RawResponse) -> Exchange:
    """Request JSON, response JSON and the equivalent curl for one call (see docs/architecture.md)."""
    return exchange(raw)
