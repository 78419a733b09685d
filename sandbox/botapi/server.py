"""``BotApiServer`` itself: lifecycle (on a loop or in a thread), Bot API dispatch with faults and rate
limits, and the record of calls."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.botapi.control import _ControlApi, _threadsafe
from sandbox.botapi.errors import BLOCKED, ApiError, _DropConnection
from sandbox.botapi.faults import _Fault, _RateLimits, _Window
from sandbox.botapi.methods import _BotApiMethods
from sandbox.botapi.state import ApiCall, BotEvent, ChatState, StoredFile, UploadedPart
from sandbox.botapi.wire import HttpRequest, HttpResponse, Route, _dumps, _HttpServer, _parse_params

if TYPE_CHECKING:
    from telegram.ext import ApplicationBuilder

DEFAULT_TOKEN = "123456789:STANDIN-token-for-tests"

# Methods that produce or change a chat message: blocking, kicking and rate limits apply to them.
_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendMediaGroup",
        "sendChatAction",
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "deleteMessage",
    }
)
_RATE_LIMITED = _MESSAGE_METHODS - {"sendChatAction", "deleteMessage"}


class BotApiServer(_BotApiMethods, _ControlApi, _HttpServer):
    """A stand-in Telegram Bot API server (one bot) with a test, inspection and fault API.

    Args:
        token: the bot token requests must carry; others get 401 Unauthorized.
        host, port: where to listen; port 0 picks a free port (see :attr:`port` after start).
        bot_username, bot_first_name: what ``getMe`` answers.
        auto_create_chats: sends to an unknown chat id create it (positive id: private chat,
            ``-100…``: supergroup, other negative: group) instead of answering "chat not found".
        strict_parse: reject malformed HTML / MarkdownV2 like Telegram ("can't parse entities").
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "marginbot_test_bot",
        bot_first_name: str = "两融雷达 (stand-in)",
        auto_create_chats: bool = True,
        strict_parse: bool = True,
    ) -> None:
        self.token = token
        self.host = host
        self._requested_port = port
        self.port = 0
        self.auto_create_chats = auto_create_chats
        self.strict_parse = strict_parse
        head = token.split(":", 1)[0]
        self.bot_user: dict[str, Any] = {
            "id": int(head) if head.isdigit() else 1000,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }

        self.users: dict[int, dict[str, Any]] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self.calls: list[ApiCall] = []
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.inline_queries: dict[str, dict[str, Any]] = {}
        self.inline_answers: dict[str, dict[str, Any]] = {}
        self.chat_actions: list[dict[str, Any]] = []
        self.uploads = 0
        self.document_uploads = 0
        self.webhook_url = ""

        self._files_by_path: dict[str, StoredFile] = {}
        self._calls_by_method: dict[str, list[ApiCall]] = {}
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = 1
        self._next_file = 1
        self._next_query = 1
        self._next_media_group = 1
        self._poll_future: asyncio.Future[None] | None = None
        self._faults: list[_Fault] = []
        self._latency: dict[str | None, float] = {}
        self._holds: dict[str, asyncio.Event] = {}  # method -> released when set (hold_answers)
        self._held: dict[str, int] = {}  # method -> requests waiting for their answer
        self._rate: _RateLimits | None = None
        self._call_waiters: list[tuple[Callable[[ApiCall], bool], asyncio.Future[ApiCall]]] = []
        self._subscribers: list[asyncio.Queue[BotEvent]] = []
        self._listeners: list[Callable[[BotEvent], None]] = []
        self._routes: dict[tuple[str, str], Route] = {}
        self._prefix_routes: list[tuple[str, str, Route]] = []

        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

        self._methods: dict[str, Callable[[dict[str, Any], dict[str, UploadedPart], ApiCall], Any]] = {
            name[3:].lower(): getattr(self, name) for name in dir(self) if name.startswith("_m_")
        }
        self._canonical = {name[3:].lower(): name[3:] for name in dir(self) if name.startswith("_m_")}

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_url`` (PTB appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder().base_file_url``."""
        return f"{self.url}/file/bot"

    # ---------------------------------------------------------------- test API: answers held back

    @_threadsafe
    def hold_answers(self, method: str) -> None:
        """Keep every ``method`` request waiting (received, not yet handled nor recorded) until
        :meth:`release_answers`: a test sees exactly which requests are in flight (:meth:`held`)."""
        self._holds.setdefault(method, asyncio.Event())

    @_threadsafe
    def release_answers(self, method: str) -> None:
        """Let the held ``method`` requests go on, and answer later ones at once."""
        gate = self._holds.pop(method, None)
        if gate is not None:
            gate.set()

    @_threadsafe
    def held(self, method: str) -> int:
        """How many ``method`` requests are waiting in :meth:`hold_answers` now."""
        return self._held.get(method, 0)

    @property
    def is_polling(self) -> bool:
        """True while a getUpdates long poll is waiting for updates."""
        return self._poll_future is not None and not self._poll_future.done()

    def application_builder(self) -> ApplicationBuilder:
        """An ``ApplicationBuilder`` already pointed at this server with its token."""
        from telegram.ext import ApplicationBuilder

        return (
            ApplicationBuilder().token(self.token).base_url(self.base_url).base_file_url(self.base_file_url)
        )

    async def start(self) -> None:
        """Start listening on the running loop (again on the same port after :meth:`stop`)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self._requested_port, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._requested_port = self.port  # a restart (outage emulation) keeps the same URLs

    async def stop(self) -> None:
        """Stop listening, end pending long polls and close open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._poll_future is not None and not self._poll_future.done():
            self._poll_future.set_result(None)
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        for _predicate, waiter in self._call_waiters:
            if not waiter.done():
                waiter.cancel()

    async def __aenter__(self) -> BotApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start_in_thread(self) -> BotApiServer:
        """Run the server in a daemon thread with its own event loop; returns once it listens."""
        if self._thread is not None:
            raise RuntimeError("server thread already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="botapi-standin", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        self._thread_loop = loop
        return self

    def stop_thread(self) -> None:
        """Stop a server started with :meth:`start_in_thread` and join its thread."""
        thread, loop = self._thread, self._thread_loop
        if thread is None or loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
        self._thread_loop = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> BotApiServer:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    # ---------------------------------------------------------------- HTTP paths (routes: _HttpServer)

    async def _dispatch(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith("/bot"):
            token, _, method = path[4:].partition("/")
            return await self._api(token, method, request)
        if path.startswith("/file/bot"):
            token, _, file_path = path[9:].partition("/")
            return self._download(token, file_path)
        return await super()._dispatch(request)

    def _download(self, token: str, file_path: str) -> HttpResponse:
        if token != self.token:
            return HttpResponse.json_body(ApiError(401, "Unauthorized").payload(), 401)
        stored = self._files_by_path.get(file_path)
        if stored is not None:
            return HttpResponse(200, stored.data, stored.mime_type or "application/octet-stream")
        return HttpResponse.json_body(ApiError(404, "Not Found").payload(), 404)

    # ---------------------------------------------------------------- Bot API dispatch

    async def _api(self, token: str, method_path: str, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        key = method_path.lower()
        method = self._canonical.get(key, method_path)
        call = ApiCall(method, {}, time.time(), None)
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            params, files = _parse_params(request)
            call.params = params
            call.files = {name: len(part.data) for name, part in files.items()}
            chat_ref = params.get("chat_id")
            call.chat_id = (
                int(chat_ref) if isinstance(chat_ref, str) and chat_ref.lstrip("-").isdigit() else chat_ref
            )
            fault = self._take_fault(method, call.chat_id) if self._faults else None
            if self._latency:
                delay = self._latency.get(method, self._latency.get(None, 0.0))
                if delay:
                    await asyncio.sleep(delay)
            gate = self._holds.get(method)
            if gate is not None:
                self._held[method] = self._held.get(method, 0) + 1
                try:
                    await gate.wait()
                finally:
                    self._held[method] -= 1
            if fault is not None:
                if fault.status == 0:
                    call.status, call.error = 0, "connection dropped"
                    raise _DropConnection
                raise ApiError(fault.status, fault.description, fault.parameters)
            handler = self._methods.get(key)
            if handler is None:
                raise ApiError(404, "Not Found")
            if method in _MESSAGE_METHODS:
                self._check_can_send(call.chat_id, method)
            result = handler(params, files, call)
            if asyncio.iscoroutine(result):
                result = await result
            call.result = result
            response = HttpResponse(200, _dumps({"ok": True, "result": result}))
        except ApiError as exc:
            call.status, call.error, call.error_parameters = exc.status, exc.description, exc.parameters
            response = HttpResponse(exc.status, _dumps(exc.payload()))
        finally:
            call.duration = time.perf_counter() - started
            self._record(call)
        return response

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        bucket = self._calls_by_method.get(call.method)
        if bucket is None:
            bucket = self._calls_by_method[call.method] = []
        bucket.append(call)
        if self._call_waiters:
            for predicate, waiter in self._call_waiters:
                if waiter.done():
                    continue
                try:
                    if predicate(call):
                        waiter.set_result(call)
                except Exception as exc:  # a broken predicate fails its own wait_for, not the server
                    waiter.set_exception(exc)

    def _take_fault(self, method: str, chat_id: int | str | None) -> _Fault | None:
        for fault in self._faults:
            if fault.method is None and method == "getUpdates":
                continue
            if fault.method is not None and fault.method.lower() != method.lower():
                continue
            if fault.chat_id is not None and fault.chat_id != chat_id:
                continue
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            return fault
        return None

    def _check_can_send(self, chat_id: int | str | None, method: str) -> None:
        if chat_id is None:
            return  # inline-message edits carry no chat
        chat = self._chat_for_request(chat_id)
        if chat.blocked:
            raise ApiError(403, chat.blocked)
        kind = "supergroup" if chat.type == "supergroup" else "group"
        if chat.bot_status == "kicked":
            if chat.type == "private":
                raise ApiError(403, BLOCKED)
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")
        if chat.bot_status == "left" and chat.is_group:
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind} chat")
        if self._rate is not None and method in _RATE_LIMITED:
            self._check_rate(chat)

    def _check_rate(self, chat: ChatState) -> None:
        rate = self._rate
        assert rate is not None
        now = time.monotonic()
        windows: list[_Window] = []
        if rate.global_per_second:
            if rate.global_window is None:
                rate.global_window = _Window(rate.global_per_second, 1.0)
            windows.append(rate.global_window)
        if rate.per_chat_per_second:
            window = rate.chat_windows.get(chat.id)
            if window is None:
                window = rate.chat_windows[chat.id] = _Window(rate.per_chat_per_second, 1.0)
            windows.append(window)
        if rate.group_per_minute and chat.is_group:
            window = rate.group_windows.get(chat.id)
            if window is None:
                window = rate.group_windows[chat.id] = _Window(rate.group_per_minute, 60.0)
            windows.append(window)
        wait = max((w.wait(now) for w in windows), default=0.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        for window in windows:
            window.stamps.append(now)
