"""The daily push: the summary of a trade date to every subscriber, once (bot.pipeline decides when).

Deliveries live in the database with a unique (chat, trade date) key; workers claim them with row
locks, send, and record the outcome, so a restart mid-push neither repeats nor skips a chat. A send
in flight when a worker is stopped is shielded from cancellation and recorded before the worker ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy.exc import OperationalError
from telegram import Bot, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.sending import CHAT_NOT_FOUND, Placement, is_chat_restriction, send_chart
from bot.services import Services, services_of
from marginbot.logging_setup import redact
from marginbot.settings import TIMEZONE
from reports.errors import ReportError
from reports.i18n import LANGUAGES
from reports.service import RenderedReport
from reports.text import caption_with
from storage import chats, deliveries, queries
from storage.models import DeliveryStatus

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# Seconds a delivery waits after its 1st, 2nd, ... failed attempt: a short outage costs a few
# attempts, not the day's summary.
RETRY_DELAYS = (30.0, 120.0, 600.0, 1800.0)
HOLD_FOR_RETRY = 90.0  # a push waits for retries due within this; later ones fall to a later tick
# Telegram's answer to a photo may be slow; a send whose answer never came may have arrived, so it
# is not repeated: waiting longer than PTB's 5 s default makes that rare.
PUSH_READ_TIMEOUT = 30.0
CLAIM_BATCH = 200
# The lines after the chart are sent within the delivery (its lease renewed meanwhile): a 429 there is
# waited out at most this many times, each wait at most this long, so that a stopping bot is not held.
APART_RETRIES = 3
APART_MAX_WAIT = 60.0
SENDERS = 16


@dataclass
class PushResult:
    trade_date: date
    sent: int = 0
    failed: int = 0
    deactivated: int = 0
    migrated: int = 0
    retried: int = 0  # attempts that failed and wait for a retry
    unconfirmed: int = 0  # sends whose answer never came: may have arrived, not repeated
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def may_have_arrived(exc: NetworkError) -> bool:
    """True when the request reached Telegram and its answer was lost (read timeout, dropped
    connection): the message may be in the chat. Failures to connect, pool waits, partial writes and
    5xx answers (no httpx cause) mean it was not sent."""
    return isinstance(exc.__cause__, httpx.ReadTimeout | httpx.ReadError | httpx.RemoteProtocolError)


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones (the last delay repeats)."""
    return RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]


class Pusher:
    """Sends the daily summary of one trade date to every claimed delivery."""

    def __init__(self, bot: Bot, services: Services, worker_id: str | None = None,
                 senders: int = SENDERS, max_attempts: int = MAX_ATTEMPTS, local_only: bool = False) -> None:
        self.bot, self.services = bot, services
        self.worker_id = worker_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.senders, self.max_attempts = senders, max_attempts
        self.local_only = local_only  # the sandbox pushes to its own invented chats only

    async def _reports(self, trade_date: date) -> dict[str, RenderedReport]:
        services = self.services
        out = {}
        for lang in LANGUAGES:
            out[lang] = await services.run(services.reports.render, "summary", on=trade_date, lang=lang)
        return out

    async def push_day(self, trade_date: date) -> PushResult:
        """Deliver every due delivery of `trade_date`; returns counts. Safe to run in several workers.

        Retries due within HOLD_FOR_RETRY are waited for; later ones are left to a later call. When
        the worker is stopped (cancelled), sends already started are finished and recorded, and
        claims not yet started are handed back, so a restarted worker neither repeats nor skips.
        """
        started = _time.perf_counter()
        result = PushResult(trade_date)
        reports = await self._reports(trade_date)
        queue: asyncio.Queue[deliveries.Claim] = asyncio.Queue(maxsize=CLAIM_BATCH * 2)
        inflight: set[asyncio.Task[None]] = set()
        workers = [asyncio.create_task(self._sender(queue, reports, result, inflight)) for _ in range(self.senders)]
        heartbeat = asyncio.create_task(self._heartbeat(trade_date))
        claiming: list[asyncio.Future[list[deliveries.Claim]]] = []
        engine = self.services.engine

        async def claim() -> list[deliveries.Claim]:
            # Shielded and remembered: a claim that commits after the worker is stopped must be
            # waited for before the worker hands back what it holds.
            future = asyncio.ensure_future(self.services.run(
                deliveries.claim, engine, trade_date, self.worker_id, CLAIM_BATCH, local_only=self.local_only))
            claiming.append(future)
            return await asyncio.shield(future)

        try:
            while True:
                claims = await claim()
                if not claims:
                    await queue.join()
                    # Retries released during the last batch become claimable again.
                    claims = await claim()
                if not claims:
                    wait = await self._retry_wait(trade_date)
                    if wait is None:
                        break
                    await asyncio.sleep(wait)
                    continue
                # the lines of the securities this batch's chats follow, read at once (not chat by chat)
                followed = {code for item in claims for code in item.watches}
                if followed:
                    await self.services.run(self.services.reports.watch_lines, followed, trade_date)
                for item in claims:
                    await queue.put(item)
        finally:
            heartbeat.cancel()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(heartbeat, *workers, return_exceptions=True)
            pending = [f for f in claiming if not f.done()]
            if inflight or pending:
                await asyncio.wait([*inflight, *pending])
            # Every send this worker started is recorded now; whatever it still holds was never sent.
            # (A thread of its own rather than services.run: this also runs while the bot shuts down.)
            await asyncio.to_thread(deliveries.release_unstarted, engine, trade_date, self.worker_id)
        result.seconds = _time.perf_counter() - started
        return result

    async def _retry_wait(self, trade_date: date) -> float | None:
        """Seconds until the next retry when it is due within HOLD_FOR_RETRY, else None."""
        due = await self.services.run(deliveries.next_retry, self.services.engine, trade_date, self.local_only)
        if due is None:
            return None
        wait = (due - datetime.now(UTC)).total_seconds()
        return max(wait, 0.0) + 0.05 if wait <= HOLD_FOR_RETRY else None

    async def _heartbeat(self, trade_date: date) -> None:
        """Renew this worker's leases while it runs: claims waiting in a long queue (rate limits,
        429 pauses) stay its own; a worker that dies stops renewing and others take over."""
        interval = deliveries.LEASE.total_seconds() / 4
        while True:
            await asyncio.sleep(interval)
            try:
                await self.services.run(deliveries.renew, self.services.engine, trade_date, self.worker_id)
            except Exception:  # the database is away for a moment: the next beat tries again
                log.warning("push of %s: lease not renewed", trade_date, exc_info=True)

    async def _sender(self, queue: asyncio.Queue[deliveries.Claim], reports: dict[str, RenderedReport],
                      result: PushResult, inflight: set[asyncio.Task[None]]) -> None:
        while True:
            item = await queue.get()
            try:
                # Shielded: once a send starts it is finished and recorded even if this worker stops.
                task = asyncio.create_task(self._deliver(item, reports, result))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                await asyncio.shield(task)
            except Exception:  # recording the outcome failed (the database): the lease settles it
                log.exception("push to chat %s: outcome not recorded", item.chat_id)
            finally:
                queue.task_done()

    async def _deliver(self, item: deliveries.Claim, reports: dict[str, RenderedReport], result: PushResult) -> None:
        engine, run, worker = self.services.engine, self.services.run, self.worker_id
        language = await run(deliveries.start, engine, item.delivery_id, worker)
        if language is None:
            # another worker took it over, or the chat unsubscribed or moved its push time meanwhile
            log.info("delivery to chat %s is no longer this worker's to send", item.chat_id)
            return
        # the language as the send starts: the chat may have changed it since the claim
        report = reports.get(language, reports[deliveries.DEFAULT_LANGUAGE])
        attempts = item.attempts + 1
        try:
            message = await self._send(item, report)
        except Forbidden as exc:
            await run(chats.refused, engine, item.chat_id, f"forbidden: {redact(exc.message)}")
            await run(deliveries.finish, engine, item.delivery_id, worker, DeliveryStatus.FAILED,
                      error=f"forbidden: {redact(exc.message)}")
            result.deactivated += 1
            return
        except ChatMigrated as exc:
            # Moves the subscription and this delivery to the new id, pending: it is resent.
            await run(chats.migrate, engine, item.chat_id, exc.new_chat_id, item.delivery_id)
            result.migrated += 1
            return
        except RetryAfter as exc:
            # Flood control after the rate limiter's own retries: wait as told, without using up an attempt.
            wait = retry_seconds(exc)
            log.warning("429 for chat %s: retrying in %.1f s", item.chat_id, wait)
            await run(deliveries.finish, engine, item.delivery_id, worker, DeliveryStatus.PENDING,
                      error=f"retry_after {wait}", retry_at=datetime.now(UTC) + timedelta(seconds=float(wait)),
                      refund_attempt=True)
            result.retried += 1
            return
        except BadRequest as exc:  # before NetworkError, of which PTB makes it a subclass
            error = f"{type(exc).__name__}: {redact(exc.message)}"
            gone = CHAT_NOT_FOUND in exc.message.lower()
            if gone or is_chat_restriction(exc):
                # Final: a deleted chat, or a group that mutes the bot: retrying will not change it.
                log.info("push to chat %s refused: %s", item.chat_id, exc.message)
                if gone:
                    await run(chats.deactivate, engine, item.chat_id, error)
                    result.deactivated += 1
                await run(deliveries.finish, engine, item.delivery_id, worker, DeliveryStatus.FAILED, error=error)
                result.failed += 1
                result.errors.append(f"{item.chat_id}: {error}")
                return
            await self._retry_or_fail(item, attempts, error, result)
            return
        except NetworkError as exc:
            if may_have_arrived(exc):
                log.warning("push to chat %s: no answer (%s); it may have arrived, so it is not sent again",
                            item.chat_id, exc.message)
                await run(deliveries.finish, engine, item.delivery_id, worker, DeliveryStatus.UNCONFIRMED,
                          error=f"{type(exc).__name__}: {redact(exc.message)}")
                result.unconfirmed += 1
                return
            await self._retry_or_fail(item, attempts, f"{type(exc).__name__}: {redact(exc.message)}", result)
            return
        except TelegramError as exc:
            await self._retry_or_fail(item, attempts, f"{type(exc).__name__}: {redact(exc.message)}", result)
            return
        except OperationalError as exc:  # the database away for a moment (locked, a dropped connection)
            log.warning("push to chat %s: database error before the send: %s", item.chat_id, exc.orig)
            await self._retry_or_fail(item, attempts, f"database: {type(exc.orig).__name__}", result)
            return
        except Exception as exc:
            # A defect, not a passing fault: retrying would fail the same way (and the photo may be out).
            log.exception("push to chat %s failed unexpectedly", item.chat_id)
            await run(deliveries.finish, engine, item.delivery_id, worker, DeliveryStatus.FAILED,
                      error=f"unexpected {type(exc).__name__}: {redact(str(exc))}")
            result.failed += 1
            result.errors.append(f"{item.chat_id}: unexpected {type(exc).__name__}")
            return
        await run(deliveries.finish, engine, item.delivery_id, worker, DeliveryStatus.SENT,
                  message_id=message.message_id)
        result.sent += 1

    async def _send(self, item: deliveries.Claim, report: RenderedReport) -> Message:
        """The summary to the chat, with the lines of the securities it follows under its caption (in
        a message of its own right after it when they do not fit), in the forum topic it subscribed
        from; a topic deleted since then is forgotten and the push goes to General (now and from
        then on)."""
        caption = None
        # what follows the chart in a message of its own: lines a caption too long gave up, and the
        # watch list where it does not fit under the caption
        apart = [report.details] if report.details else []
        if item.watches:
            services = self.services
            # under the caption without their date (the summary's names it), in a message apart with it
            lines = await services.run(services.reports.watch_text, item.watches, on=report.on, lang=report.lang,
                                       dated=False)
            caption = caption_with(report.caption, lines)
            if caption is None:
                apart.append(await services.run(services.reports.watch_text, item.watches, on=report.on,
                                                lang=report.lang))
        placement = Placement(thread_id=item.thread_id)
        try:
            message = await send_chart(self.bot, self.services, item.chat_id, report, placement=placement,
                                       caption=caption, read_timeout=PUSH_READ_TIMEOUT)
        except BadRequest as exc:
            if item.thread_id is None or "thread not found" not in exc.message.lower():
                raise
            log.warning("chat %s: push topic %s is gone; pushing to General", item.chat_id, item.thread_id)
            await self.services.run(chats.clear_push_thread, self.services.engine, item.chat_id)
            placement = Placement()
            message = await send_chart(self.bot, self.services, item.chat_id, report, caption=caption,
                                       read_timeout=PUSH_READ_TIMEOUT)
        if apart:
            await self._send_apart(item.chat_id, "\n\n".join(apart), placement)
        return message

    async def _send_apart(self, chat_id: int, text: str, placement: Placement) -> None:
        """The lines that follow the chart. The chart is out and its delivery stands whatever happens
        here, so a failure is logged, not retried by the delivery (that would send the chart again);
        only a 429 that outlasted the rate limiter's own retries is waited out, a few times."""
        for attempt in range(1, APART_RETRIES + 2):
            try:
                await self.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, **placement.send_kwargs())
                return
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                if attempt > APART_RETRIES or wait > APART_MAX_WAIT:
                    log.warning("chat %s: lines after the push not sent: still flood-limited (retry after %s s)",
                                chat_id, wait)
                    return
                log.info("chat %s: 429 on the lines after the push; retrying in %.1f s", chat_id, wait)
                await asyncio.sleep(float(wait))
            except TelegramError as exc:  # the summary is there: the delivery stands, the lines are lost
                log.warning("chat %s: lines after the push not sent: %s", chat_id, exc)
                return

    async def _retry_or_fail(self, item: deliveries.Claim, attempts: int, error: str, result: PushResult) -> None:
        """After a failed attempt: pending again after its backoff, or failed for good after max_attempts."""
        final = attempts >= self.max_attempts
        retry_at = None if final else datetime.now(UTC) + timedelta(seconds=retry_delay(attempts))
        status = DeliveryStatus.FAILED if final else DeliveryStatus.PENDING
        await self.services.run(deliveries.finish, self.services.engine, item.delivery_id, self.worker_id,
                                status, error=error, retry_at=retry_at)
        if final:
            result.failed += 1
            result.errors.append(f"{item.chat_id}: {error}")
            log.error("delivery to chat %s failed after %d attempts: %s", item.chat_id, attempts, error)
        else:
            result.retried += 1
            log.info("delivery to chat %s: attempt %d failed (%s); retrying in %.0f s", item.chat_id, attempts,
                     error, retry_delay(attempts))


def latest_pushable_date(services: Services) -> date | None:
    """The latest day the push may go out for: its ingestion complete (margin data and sectors) and
    its reports whole (the turnover of SSE and SZSE stored too: see queries.latest_data_date)."""
    from storage.ingest_status import latest_complete_date

    shown = queries.latest_data_date(services.engine)
    complete = latest_complete_date(services.engine)
    # Data that arrived by import or demo has no ingestion status: the latest data date stands in.
    if complete is None or shown is None:
        return shown
    return min(complete, shown)


def retry_seconds(exc: RetryAfter) -> float:
    """A 429's retry_after in seconds (PTB gives an int, or a timedelta in its newer mode)."""
    wait = exc.retry_after
    return float(wait if isinstance(wait, int | float) else wait.total_seconds())


async def push_now(application: Application, trade_date: date | None = None,  # type: ignore[type-arg]
                   plan: bool = True) -> PushResult | None:
    """Plan and run the push of `trade_date` (default: the latest complete day) for every due subscriber
    (`plan` False: run only the deliveries planned already).

    None when there is nothing to push, the summary cannot be rendered, or the application stopped
    the push (stop_pushes): what it had not started is handed back for the next start.
    """
    services = services_of(application)
    day = trade_date or await services.run(latest_pushable_date, services)
    if day is None:
        return None
    local_only = bool(application.bot_data.get("local_only"))
    now = datetime.now(TIMEZONE).time()
    lock = application.bot_data.setdefault("push_lock", asyncio.Lock())
    async with lock:
        if application.bot_data.get("stopping"):
            return None
        expired = await services.run(deliveries.expire_before, services.engine, day, local_only)
        if expired:
            log.warning("push of %s: %d deliveries of earlier days were never sent; given up", day, expired)
        planned = await services.run(deliveries.plan_deliveries, services.engine, day, now,
                                     services.settings.push_time, local_only) if plan else 0
        if planned:
            log.info("push of %s: %d deliveries planned", day, planned)
        if application.bot_data.get("stopping"):  # the bot began to stop while this planned
            return None
        pusher = Pusher(application.bot, services, local_only=local_only)
        # No await between the check above and registering the task: stop_pushes sees every push begun.
        task = asyncio.ensure_future(pusher.push_day(day))
        running: set[asyncio.Future[PushResult]] = application.bot_data.setdefault("push_tasks", set())
        running.add(task)
        task.add_done_callback(running.discard)
        try:
            result = await task
        except ReportError as exc:
            log.error("push of %s: summary unavailable: %s", day, exc.message("en"))
            return None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this call itself is cancelled, not only the push
            log.info("push of %s stopped with the application; the rest is handed back", day)
            return None
    if result.sent or result.failed or result.unconfirmed or result.retried:
        log.info("push of %s: %d sent, %d failed, %d unconfirmed, %d retrying later, %d deactivated, %d migrated"
                 " in %.1f s", day, result.sent, result.failed, result.unconfirmed, result.retried,
                 result.deactivated, result.migrated, result.seconds)
    return result


async def stop_pushes(application: Application) -> None:  # type: ignore[type-arg]
    """Stop the pushes under way: sends in flight finish and are recorded, claims not started are
    handed back (a push of 10,000 chats runs for minutes: a stopping bot must not wait for it)."""
    running = list(application.bot_data.get("push_tasks", ()))
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)
