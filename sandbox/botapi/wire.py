"""HTTP on asyncio streams: request/response records, Bot API parameter decoding, a keep-alive server base."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

from sandbox.botapi.errors import ApiError, _DropConnection
from sandbox.botapi.state import UploadedPart

log = logging.getLogger(__name__)

# Parameters whose wire value is a plain string even when it looks like JSON ("123", "true").
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "query",
        "data",
        "description",
        "short_description",
        "parse_mode",
        "callback_query_id",
        "inline_query_id",
        "inline_message_id",
        "url",
        "action",
        "language_code",
        "file_id",
        "next_offset",
        "secret_token",
        "name",
        "photo",
        "document",
    }
)

_DISPOSITION_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


@dataclass(slots=True)
class HttpRequest:
    """A parsed HTTP request, as handed to routes added with :meth:`BotApiServer.add_route`."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body or b"null")


@dataclass(slots=True)
class HttpResponse:
    """An HTTP response; ``stream`` (chunks sent with chunked encoding) replaces ``body`` when set."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None

    @classmethod
    def json_body(cls, obj: Any, status: int = 200) -> HttpResponse:
        """A JSON response."""
        return cls(status, _dumps(obj))

    @classmethod
    def text_body(
        cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8"
    ) -> HttpResponse:
        """A text response."""
        return cls(status, text.encode(), content_type)


Route = Callable[[HttpRequest], Awaitable[HttpResponse]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _decode_value(key: str, value: str) -> Any:
    if key in _STRING_PARAMS or not value:
        return value
    first = value[0]
    if first in '{["-0123456789tfn':
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, UploadedPart]]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ApiError(400, "Bad Request: multipart boundary missing")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, UploadedPart] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        part_headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part_headers[name.strip().lower()] = value.strip()
        params = {
            key.lower(): quoted or unq.strip()
            for key, quoted, unq in _DISPOSITION_PARAM_RE.findall(part_headers.get("content-disposition", ""))
        }
        part_name = params.get("name")
        if part_name is None:
            continue
        if "filename" in params or "filename*" in params:
            filename = params.get("filename") or unquote(params.get("filename*", "").split("''")[-1])
            files[part_name] = UploadedPart(part_name, filename, part_headers.get("content-type"), content)
        else:
            fields[part_name] = content.decode("utf-8")
    return fields, files


def _parse_params(request: HttpRequest) -> tuple[dict[str, Any], dict[str, UploadedPart]]:
    content_type = request.headers.get("content-type", "")
    files: dict[str, UploadedPart] = {}
    raw: dict[str, str] = dict(request.query)
    if request.body:
        if content_type.startswith("application/x-www-form-urlencoded"):
            raw.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        elif content_type.startswith("multipart/form-data"):
            fields, files = _parse_multipart(request.body, content_type)
            raw.update(fields)
        elif content_type.startswith("application/json"):
            try:
                decoded = json.loads(request.body)
            except ValueError as exc:
                raise ApiError(400, "Bad Request: can't parse JSON request body") from exc
            if not isinstance(decoded, dict):
                raise ApiError(400, "Bad Request: JSON request body must be an object")
            params = {k: _decode_value(k, v) for k, v in raw.items()}
            params.update(decoded)
            return params, files
    return {k: _decode_value(k, v) for k, v in raw.items()}, files


class _HttpServer:
    """HTTP/1.1 connections (keep-alive, chunked bodies, streamed responses) and extra routes.

    Listening is up to the subclass (``asyncio.start_server(self._serve_connection, ...)``); it
    answers its own paths by overriding :meth:`_dispatch` and hands the rest to ``super()``.
    """

    _connections: set[asyncio.Task[None]]
    _routes: dict[tuple[str, str], Route]
    _prefix_routes: list[tuple[str, str, Route]]

    def add_route(self, method: str, path: str, handler: Route) -> None:
        """Serve extra HTTP endpoints (e.g. a chat page) on the same port.

        ``path`` ending in ``/`` matches every path below it. Paths starting with ``/bot`` or
        ``/file/bot`` always go to the Bot API, so a ``"/"`` prefix route only gets the rest.
        Handlers run on the server loop and may return a streaming :class:`HttpResponse`
        (e.g. ``text/event-stream`` fed from :meth:`subscribe`); a client that goes away is only
        noticed on the next write, so streams should send a heartbeat now and then.
        """
        if path.endswith("/"):
            self._prefix_routes.append((method.upper(), path, handler))
        else:
            self._routes[(method.upper(), path)] = handler

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    if "chunked" in headers.get("transfer-encoding", "").lower():
                        body = await self._read_chunked(reader)
                    else:
                        length = int(headers.get("content-length") or 0)
                        body = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return
                connection = headers.get("connection", "").lower()
                keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
                path, _, query_string = target.partition("?")
                request = HttpRequest(
                    method.upper(), unquote(path), dict(parse_qsl(query_string)), headers, body
                )
                try:
                    response = await self._dispatch(request)
                except _DropConnection:
                    return
                except Exception:
                    log.exception("stand-in Bot API: error handling %s %s", method, path)
                    response = HttpResponse.json_body(ApiError(500, "Internal Server Error").payload(), 500)
                if not await self._write_response(writer, response, keep_alive) or not keep_alive:
                    return
        except asyncio.CancelledError:
            # Only stop() cancels these; finishing normally keeps asyncio's stream callback quiet.
            return
        finally:
            self._connections.discard(task)
            writer.close()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    @staticmethod
    async def _write_response(writer: asyncio.StreamWriter, response: HttpResponse, keep_alive: bool) -> bool:
        status = response.status
        head = [f"HTTP/1.1 {status} {_phrase(status)}", f"Content-Type: {response.content_type}"]
        head.extend(f"{k}: {v}" for k, v in response.headers.items())
        head.append("Connection: keep-alive" if keep_alive else "Connection: close")
        try:
            if response.stream is None:
                head.append(f"Content-Length: {len(response.body)}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
                await writer.drain()
                return True
            head.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            try:
                async for chunk in response.stream:
                    if chunk:
                        writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                        await writer.drain()
            finally:
                # Run the generator's cleanup (e.g. unsubscribe) now, not whenever it is collected.
                aclose = getattr(response.stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            return False

    async def _dispatch(self, request: HttpRequest) -> HttpResponse:
        """Answer from the routes added with :meth:`add_route`; 404 for any other path."""
        path = request.path
        handler = self._routes.get((request.method, path))
        if handler is None:
            for method, prefix, candidate in self._prefix_routes:
                if method == request.method and path.startswith(prefix):
                    handler = candidate
                    break
        if handler is None:
            return HttpResponse.text_body("Not Found", 404)
        return await handler(request)
