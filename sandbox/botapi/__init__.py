"""A stand-in Telegram Bot API server for tests, benchmarks and the local demo chat page.

The real python-telegram-bot client talks to it over HTTP on 127.0.0.1, so everything between the
bot's code and the wire (PTB's request encoding, error mapping, update de-serialisation) is
exercised exactly as in production. Only the standard library is used: a small HTTP/1.1 server on
``asyncio.start_server`` with keep-alive, urlencoded/JSON/multipart request bodies and optional
chunked streaming responses (for server-sent events of a chat page).

Two ways to run it::

    # inside the test's event loop
    async with BotApiServer() as server:
        app = server.application_builder().build()
        ...

    # in a background thread with its own loop, for synchronous callers
    with BotApiServer() as server:  # or server.start_in_thread() ... server.stop_thread()
        httpx.post(f"{server.base_url}{server.token}/getMe")

State-changing and inspection methods may be called from any thread in thread mode; they run on
the server's loop. Async helpers (``wait_for``) work from any loop.

The package, in the order its modules build on each other:

- ``errors``: how a request fails: ``ApiError`` answers, dropped connections and Telegram's wording.
- ``text``: parse-mode checking and plain-text rendering of HTML / MarkdownV2, and text limits.
- ``state``: the records the server keeps: calls, uploads, files, messages, chats, members and events.
- ``faults``: the records behind injected faults and emulated flood limits.
- ``wire``: HTTP on asyncio streams: request/response records, parameter decoding, a keep-alive server.
- ``base``: the state every part shares, with the helpers for users, chats, messages, texts and events.
- ``files``: stored files: uploaded photos and documents, and resolving a file argument to one.
- ``methods``: the Bot API methods the stand-in answers, from ``getMe`` to ``getFile``.
- ``control``: the test and chat-page API: set up, inject, inspect, wait and subscribe.
- ``server``: ``BotApiServer`` itself: lifecycle, dispatch with faults and rate limits, recording.
"""

from sandbox.botapi.errors import ApiError
from sandbox.botapi.server import DEFAULT_TOKEN, BotApiServer
from sandbox.botapi.state import ApiCall, BotEvent, ChatState, StoredFile, StoredMessage, UploadedPart
from sandbox.botapi.text import visible_text
from sandbox.botapi.wire import HttpRequest, HttpResponse

__all__ = [
    "DEFAULT_TOKEN",
    "ApiCall",
    "ApiError",
    "BotApiServer",
    "BotEvent",
    "ChatState",
    "HttpRequest",
    "HttpResponse",
    "StoredFile",
    "StoredMessage",
    "UploadedPart",
    "visible_text",
]
