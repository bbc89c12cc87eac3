"""A client of ``fossil serve`` (issue 29): the calls ``fossil ingest/eval/query --server``
make, over HTTP with the standard library only.

The server owns the store; a client sends corpora to ingest, follows the jobs and takes
prototypes (:mod:`fossil.serve.wire`), doing the image work with its own models.  An API key
(``$FOSSIL_API_KEY``) is sent as ``X-API-Key`` when given.  An error answer raises
:class:`ServerError` carrying the server's message.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fossil.serve.wire import Prototypes

logger = logging.getLogger(__name__)

API_KEY_ENV = "FOSSIL_API_KEY"


class ServerError(RuntimeError):
    """An error answer of the server (``status``: the HTTP status, 0: unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServerClient:
    """``url``: the server's base URL (``http://127.0.0.1:8000``); ``timeout``: seconds per
    call (a prototype request waits in the server's model queue)."""

    url: str
    api_key: str | None = None
    timeout: float = 600.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"server URL {self.url!r} is not an http(s) URL: give e.g. http://127.0.0.1:8000"
            )
        object.__setattr__(self, "url", self.url.rstrip("/"))

    # -- reads ----------------------------------------------------------------------------
    def collection(self) -> dict[str, Any]:
        """``GET /collection``: revision, references, meta, settings, ingest_active."""
        return self._json("GET", "/collection")

    def prototypes(
        self,
        concepts: Sequence[str],
        *,
        n: int | None = None,
        k: int | None = None,
        preset: str | None = None,
    ) -> Prototypes:
        """``GET /prototypes``: the concepts' prototypes as the server computes them now."""
        from fossil.serve.wire import decode

        query = {"concepts": ", ".join(concepts), "n": n, "k": k, "preset": preset}
        data = self._call("GET", "/prototypes", query=query)
        found = decode(data)
        if list(found.concepts) != list(concepts):
            raise ServerError(200, f"the server answered concepts {found.concepts}")
        return found

    def query(self, concepts: Sequence[str], **params: Any) -> dict[str, Any]:
        """``GET /query`` (params: ``n``, ``k``, ``preset``, ``top``)."""
        return self._json("GET", "/query", query={"concepts": ", ".join(concepts), **params})

    # -- ingest jobs ----------------------------------------------------------------------
    def start_ingest(
        self, path: str | Path, *, name: str | None = None, format: str | None = None
    ) -> dict[str, Any]:
        """Upload the corpus file ``path`` (``POST /ingest``); the job's state."""
        source = Path(path)
        fields = {"name": name, "format": format}
        body, content_type = _multipart(fields, "corpus", source.name, source.read_bytes())
        return self._json("POST", "/ingest", body=body, content_type=content_type)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/ingest/{urllib.parse.quote(job_id)}")

    def stop(self, job_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/ingest/{urllib.parse.quote(job_id)}")

    # -- plumbing -------------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._call(method, path, **kwargs))
        return answer

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> bytes:
        url = self.url + path
        if query:
            kept = {k: v for k, v in query.items() if v is not None}
            url += "?" + urllib.parse.urlencode(kept)
        headers = {"Accept": "application/json, application/octet-stream"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as error:
            raise ServerError(error.code, f"{self.url}: {_detail(error)}") from None
        except urllib.error.URLError as error:
            raise ServerError(
                0, f"cannot reach the fossil server at {self.url} ({error.reason}): is "
                "`fossil serve` running there?"
            ) from None  # fmt: skip


def _detail(error: urllib.error.HTTPError) -> str:
    text = error.read().decode("utf-8", "replace")
    try:
        detail = json.loads(text).get("detail", text)
    except (ValueError, AttributeError):
        detail = text
    return f"{error.code} {detail}"


def _multipart(
    fields: dict[str, str | None], file_field: str, filename: str, data: bytes
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        if value is not None:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
    quoted = filename.replace('"', "%22")
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
