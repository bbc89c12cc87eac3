"""What ``fossil serve`` checks of every request before the app sees it, and what it keeps
out of its answers.

* :class:`HostCheck` — the ``Host`` header must name this server (one of the allowed host
  names), else a 400: a page on another site that rebinds its DNS name to 127.0.0.1 sends
  its own name, so it cannot read a local server (DNS rebinding).
* :func:`without_paths` — ``/info`` without an API key: no absolute local path.
* :func:`scrub` — an error message with the store's location replaced by "the store".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")  # a server bound to localhost answers these
ANY_HOST = "*"
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*|[0-9a-f:.]*:[0-9a-f:.]*")  # DNS name, IP


def host_name(header: str) -> str:
    """The host name of a ``Host`` header value: without its port, brackets (IPv6) and
    trailing dot, lowercased."""
    value = header.strip().lower()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def check_host_names(names: Iterable[str]) -> tuple[str, ...]:
    """The allowed host names in their normal form (as :func:`host_name` gives a header's);
    ``ValueError`` for one that is not a plain DNS name or IP address (no scheme, port or
    path), or ``*`` (any host)."""
    checked = []
    for name in names:
        normal = name.strip().lower()
        if normal.startswith("[") and normal.endswith("]"):  # [::1]
            normal = normal[1:-1]
        normal = normal if normal == ANY_HOST else normal.rstrip(".")
        if normal != ANY_HOST and not _NAME.fullmatch(normal):
            raise ValueError(
                f"allowed host {name!r} is not a host name: give names like 'fossil.example' "
                f"or '10.0.0.5' (no scheme, port or path), or {ANY_HOST!r} for any"
            )
        checked.append(normal)
    if not checked:
        raise ValueError("no allowed host names: give at least one (or '*' for any)")
    return tuple(dict.fromkeys(checked))


class HostCheck:
    """ASGI middleware: a request whose ``Host`` is not one of ``allowed`` (normal forms,
    :func:`check_host_names`) gets a 400 naming the allowed names and ``--allowed-hosts``."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or ANY_HOST in self.allowed:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if host_name(given) in self.allowed:
            await self.app(scope, receive, send)
            return
        names = ", ".join(sorted(self.allowed))
        message = (
            f"Host {given[:100]!r} is not a name of this server (it answers {names}): "
            "start it with --allowed-hosts NAME to answer another name"
        )
        await JSONResponse({"detail": message}, status_code=400)(scope, receive, send)


def store_locations(root: str | os.PathLike[str] | None) -> list[str]:
    """The spellings of a store directory an error or report may carry, longest first."""
    if root is None:
        return []
    path = Path(root).expanduser()
    spellings = {str(path), str(path.absolute()), str(path.resolve())}
    return sorted((s for s in spellings if s not in ("", ".", "/")), key=len, reverse=True)


def scrub(text: str, locations: list[str]) -> str:
    """``text`` with each of ``locations`` (:func:`store_locations`) replaced."""
    for location in locations:
        text = text.replace(location, "<store>")
    return text


def without_paths(info: dict[str, Any], locations: list[str]) -> dict[str, Any]:
    """``/info`` (what ``fossil info --json`` says) with no local path: the store and
    vector-store locations left out (None), each corpus source by its file name only, and
    the store's location scrubbed from the rest (e.g. failure messages)."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value, locations)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    shown = clean({k: v for k, v in info.items() if k not in ("store", "vector_store")})
    shown["store"] = shown["vector_store"] = None
    for corpus in shown.get("corpora") or []:
        source = corpus.get("source")
        if isinstance(source, str) and source:
            corpus["source"] = Path(source).name
    return shown
