"""The bot's state in the database (storage/chats.py, storage/deliveries.py), on SQLite and on
PostgreSQL: chats, the plan of a day's deliveries, claims with leases, several workers claiming at
once, group migration."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, time, timedelta

import pytest
from sqlalchemy import Engine, select, update

from storage import chats, deliveries, models
from storage.database import session_scope
from storage.models import DeliveryStatus

DAY = date(2026, 11, 20)
DEFAULT_TIME = time(9, 0)


def _subscribe(engine: Engine, chat_id: int, *, language: str = "zh", push_time: time | None = None,
               chat_type: str = "private") -> None:
    chats.ensure_chat(engine, chat_id, chat_type, f"chat {chat_id}", language)
    chats.set_subscribed(engine, chat_id, True)
    if push_time is not None:
        chats.set_push_time(engine, chat_id, push_time)


def _deliveries(engine: Engine) -> dict[int, tuple[str, str, int]]:
    """chat_id -> (status, claimed_by, attempts) of DAY's deliveries."""
    with session_scope(engine) as session:
        rows = session.execute(select(models.Delivery).where(models.Delivery.trade_date == DAY)).scalars().all()
        return {r.chat_id: (r.status, r.claimed_by, r.attempts) for r in rows}


def _errors(engine: Engine) -> dict[int, str]:
    with session_scope(engine) as session:
        rows = session.execute(select(models.Delivery).where(models.Delivery.trade_date == DAY)).scalars().all()
        return {r.chat_id: r.error for r in rows}


def test_ensure_chat_keeps_the_first_language_and_reactivates(engine: Engine) -> None:
    first = chats.ensure_chat(engine, 1, "private", "Ann", "en")
    assert (first.language, first.active, first.subscribed) == ("en", True, False)
    # a later contact with another guess does not override what the chat chose
    assert chats.ensure_chat(engine, 1, "private", "Ann B", "zh").language == "en"
    chats.deactivate(engine, 1, "forbidden: bot was blocked by the user")
    stored = chats.get_chat(engine, 1)
    assert stored is not None and not stored.active and stored.deactivated_reason.startswith("forbidden")
    again = chats.ensure_chat(engine, 1, "private", "Ann B", "zh")  # the user came back
    assert (again.active, again.deactivated_reason, again.title) == (True, "", "Ann B")


def test_set_subscribed_reports_changes(engine: Engine) -> None:
    assert chats.set_subscribed(engine, 5, True) is False  # unknown chat
    chats.ensure_chat(engine, 5, "private", "x", "zh")
    assert chats.set_subscribed(engine, 5, True) is True
    assert chats.set_subscribed(engine, 5, True) is False  # already
    assert chats.subscriber_count(engine) == 1
    chats.deactivate(engine, 5, "kicked")
    assert chats.subscriber_count(engine) == 0  # an inactive chat is not pushed to
    assert chats.set_subscribed(engine, 5, True) is True  # subscribing again reactivates it
    assert chats.subscriber_count(engine) == 1


def test_subscribing_twice_at_once_changes_the_chat_once(engine: Engine) -> None:
    """Eight /subscribe handled at the same moment: exactly one reports the change."""
    chats.ensure_chat(engine, 6, "private", "x", "zh")
    start, answers = threading.Barrier(8), []

    def subscribe() -> None:
        start.wait()
        answers.append(chats.set_subscribed(engine, 6, True))

    threads = [threading.Thread(target=subscribe) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] * 7 + [True] and chats.subscriber_count(engine) == 1


def test_a_forum_topic_takes_the_push(engine: Engine) -> None:
    chats.ensure_chat(engine, -100, "supergroup", "forum", "zh")
    assert chats.set_subscribed(engine, -100, True, thread_id=42) is True
    assert chats.set_subscribed(engine, -100, True, thread_id=42) is False  # already, from that topic
    assert chats.set_subscribed(engine, -100, True, thread_id=7) is True  # subscribed again elsewhere: moved
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)
    [claimed] = deliveries.claim(engine, DAY, "w", limit=1)
    assert (claimed.chat_id, claimed.thread_id) == (-100, 7)
    chats.clear_push_thread(engine, -100)  # the topic was deleted
    stored = chats.get_chat(engine, -100)
    assert stored is not None and stored.push_thread_id is None and stored.subscribed
    assert chats.set_subscribed(engine, -100, False) is True
    assert chats.set_subscribed(engine, -100, True) is True  # from General


def test_plan_deliveries_by_push_time_and_only_once(engine: Engine) -> None:
    _subscribe(engine, 1)  # default time (09:00)
    _subscribe(engine, 2, push_time=time(8, 0))  # earlier than the default
    _subscribe(engine, 3, push_time=time(12, 0))
    _subscribe(engine, 4)
    chats.set_subscribed(engine, 4, False)
    _subscribe(engine, 5)
    chats.deactivate(engine, 5, "kicked")

    assert deliveries.plan_deliveries(engine, DAY, time(8, 30), DEFAULT_TIME) == 1  # only chat 2's time has come
    assert set(_deliveries(engine)) == {2}
    assert deliveries.plan_deliveries(engine, DAY, time(9, 0), DEFAULT_TIME) == 1  # the default time: chat 1
    assert deliveries.plan_deliveries(engine, DAY, time(9, 30), DEFAULT_TIME) == 0  # planning again adds nothing
    assert deliveries.plan_deliveries(engine, DAY, time(12, 0), DEFAULT_TIME) == 1  # chat 3
    assert _deliveries(engine) == dict.fromkeys((1, 2, 3), (DeliveryStatus.PENDING, "", 0))
    assert deliveries.delivery_counts(engine, DAY) == {DeliveryStatus.PENDING: 3}


def _age(engine: Engine, chat_ids: list[int], minutes: float) -> None:
    """Make the claims of `chat_ids` as old as `minutes` (their worker stopped renewing them)."""
    with session_scope(engine) as session:
        session.execute(update(models.Delivery).where(models.Delivery.chat_id.in_(chat_ids))
                        .values(claimed_at=chats._now() - timedelta(minutes=minutes)))


def test_claim_start_finish_and_release(engine: Engine) -> None:
    for chat_id in (10, 11, 12):
        _subscribe(engine, chat_id, language="en" if chat_id == 11 else "zh")
    assert deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME) == 3

    first = deliveries.claim(engine, DAY, "worker-a", limit=2)
    assert [(c.chat_id, c.language, c.attempts) for c in first] == [(10, "zh", 0), (11, "en", 0)]
    second = deliveries.claim(engine, DAY, "worker-b", limit=5)
    assert [c.chat_id for c in second] == [12]  # never one already claimed
    assert deliveries.claim(engine, DAY, "worker-b", limit=5) == []

    # a send starts (one attempt more), once, and only by the worker holding the claim
    assert not deliveries.start(engine, second[0].delivery_id, "worker-a")
    assert deliveries.start(engine, first[0].delivery_id, "worker-a")
    assert not deliveries.start(engine, first[0].delivery_id, "worker-a")
    assert _deliveries(engine)[10] == (DeliveryStatus.SENDING, "worker-a", 1)
    assert not deliveries.finish(engine, first[0].delivery_id, "worker-b", DeliveryStatus.SENT,
                                 message_id=1)  # not b's
    assert deliveries.finish(engine, first[0].delivery_id, "worker-a", DeliveryStatus.SENT, message_id=777)

    # a failed attempt waits for its retry time before anyone claims it again
    assert deliveries.start(engine, first[1].delivery_id, "worker-a")
    retry_at = chats._now() + timedelta(seconds=30)
    deliveries.finish(engine, first[1].delivery_id, "worker-a", DeliveryStatus.PENDING, error="Bad Gateway",
                      retry_at=retry_at)
    assert _deliveries(engine)[11] == (DeliveryStatus.PENDING, "", 1)
    assert deliveries.claim(engine, DAY, "worker-b", limit=5) == []
    due = deliveries.next_retry(engine, DAY)
    assert due is not None and abs((due - retry_at).total_seconds()) < 0.001
    with session_scope(engine) as session:
        session.execute(update(models.Delivery).where(models.Delivery.chat_id == 11)
                        .values(not_before=chats._now() - timedelta(seconds=1)))
    assert [(c.chat_id, c.attempts) for c in deliveries.claim(engine, DAY, "worker-b", limit=5)] == [(11, 1)]

    # a 429 asks to wait: pending again without using up the attempt
    assert deliveries.start(engine, second[0].delivery_id, "worker-b")
    deliveries.finish(engine, second[0].delivery_id, "worker-b", DeliveryStatus.PENDING, error="retry_after 3",
                      retry_at=chats._now() - timedelta(seconds=1), refund_attempt=True)
    assert _deliveries(engine)[12] == (DeliveryStatus.PENDING, "", 0)

    # worker-a stops holding nothing; worker-b hands back the claim it had not started
    assert deliveries.release_unstarted(engine, DAY, "worker-a") == 0
    assert deliveries.release_unstarted(engine, DAY, "worker-b") == 1
    assert _deliveries(engine) == {10: (DeliveryStatus.SENT, "worker-a", 1), 11: (DeliveryStatus.PENDING, "", 1),
                                   12: (DeliveryStatus.PENDING, "", 0)}
    assert deliveries.delivery_counts(engine, DAY) == {DeliveryStatus.SENT: 1, DeliveryStatus.PENDING: 2}


def test_a_dead_workers_claims_are_taken_over_and_its_sends_never_repeated(engine: Engine) -> None:
    for chat_id in (20, 21, 22):
        _subscribe(engine, chat_id)
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)
    held = deliveries.claim(engine, DAY, "worker-c", limit=3)
    assert deliveries.start(engine, held[0].delivery_id, "worker-c")  # 20 is being sent when c stops

    _age(engine, [20, 21, 22], minutes=1.5)
    assert deliveries.renew(engine, DAY, "worker-c") == 3  # a live worker's heartbeat keeps its claims
    assert deliveries.claim(engine, DAY, "worker-d", limit=5) == []
    _age(engine, [20, 21, 22], minutes=3)  # then c died: its lease runs out
    taken = deliveries.claim(engine, DAY, "worker-d", limit=5)
    # unstarted claims move to d; the send under way may have arrived: recorded, not repeated
    assert [(c.chat_id, c.attempts) for c in taken] == [(21, 0), (22, 0)]
    assert _deliveries(engine)[20] == (DeliveryStatus.UNCONFIRMED, "worker-c", 1)
    assert "may have arrived" in _errors(engine)[20]
    # c wakes up: it can neither send what d holds nor record over it
    assert not deliveries.start(engine, held[1].delivery_id, "worker-c")
    assert not deliveries.finish(engine, held[2].delivery_id, "worker-c", DeliveryStatus.FAILED, error="late")
    assert deliveries.claim(engine, DAY, "worker-e", limit=5) == []
    assert deliveries.delivery_counts(engine, DAY) == {DeliveryStatus.UNCONFIRMED: 1, DeliveryStatus.CLAIMED: 2}


def test_the_next_push_gives_up_what_the_last_did_not_deliver(engine: Engine) -> None:
    before = DAY - timedelta(days=1)
    for chat_id in (30, 31, 32):
        _subscribe(engine, chat_id)
    deliveries.plan_deliveries(engine, before, time(10, 0), DEFAULT_TIME)
    c30, c31, _c32 = deliveries.claim(engine, before, "w", limit=3)
    deliveries.start(engine, c30.delivery_id, "w")
    deliveries.finish(engine, c30.delivery_id, "w", DeliveryStatus.SENT, message_id=5)
    deliveries.start(engine, c31.delivery_id, "w")  # w stopped in the middle of this send
    deliveries.release_unstarted(engine, before, "w")
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)

    assert deliveries.expire_before(engine, DAY) == 1
    with session_scope(engine) as session:
        rows = {r.chat_id: (r.status, r.error) for r in session.execute(
            select(models.Delivery).where(models.Delivery.trade_date == before)).scalars()}
    assert rows[30] == (DeliveryStatus.SENT, "")
    assert rows[31][0] == DeliveryStatus.UNCONFIRMED
    assert rows[32] == (DeliveryStatus.FAILED, f"not delivered before the push of {DAY.isoformat()}")
    assert deliveries.delivery_counts(engine, DAY) == {DeliveryStatus.PENDING: 3}  # the new day is untouched
    # a worker still sending (another process) records its answer over "unconfirmed"
    assert deliveries.finish(engine, c31.delivery_id, "w", DeliveryStatus.SENT, message_id=6)
    with session_scope(engine) as session:
        assert session.get(models.Delivery, c31.delivery_id).status == DeliveryStatus.SENT  # type: ignore[union-attr]


def test_the_sandbox_pushes_to_its_own_chats_only(engine: Engine) -> None:
    local_user, local_group = chats.LOCAL_CHAT_ID_FLOOR + 1, -(chats.LOCAL_CHAT_ID_FLOOR + 1)
    biggest_real = chats.LOCAL_CHAT_ID_FLOOR - 1  # Telegram ids have at most 52 significant bits
    for chat_id in (local_user, local_group, biggest_real, -biggest_real, 40):
        _subscribe(engine, chat_id)
    assert chats.subscriber_count(engine, local_only=True) == 2 and chats.subscriber_count(engine) == 5
    assert deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME, local_only=True) == 2
    assert set(_deliveries(engine)) == {local_user, local_group}
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)  # the real bot's plan
    taken = deliveries.claim(engine, DAY, "sandbox", limit=10, local_only=True)
    assert sorted(c.chat_id for c in taken) == sorted([local_user, local_group])
    assert deliveries.claim(engine, DAY, "sandbox", limit=10, local_only=True) == []
    # a real bot starting on this database forgets the invented chats, and only those
    assert chats.forget_local(engine) == 2
    assert sorted(_deliveries(engine)) == sorted([biggest_real, -biggest_real, 40])


def test_workers_claiming_at_once_never_share_a_delivery(engine: Engine) -> None:
    """Four workers claim batches of 16 from 600 deliveries at the same time (PostgreSQL: row locks
    with SKIP LOCKED; SQLite: one writer at a time): every delivery is taken exactly once."""
    with session_scope(engine) as session:
        session.add_all(models.Chat(chat_id=1000 + i, subscribed=True) for i in range(600))
    assert deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME) == 600
    taken: dict[str, list[int]] = {f"w{i}": [] for i in range(4)}
    errors: list[BaseException] = []
    start = threading.Barrier(len(taken))

    def work(worker: str) -> None:
        try:
            start.wait()
            while batch := deliveries.claim(engine, DAY, worker, limit=16):
                taken[worker].extend(c.chat_id for c in batch)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    counts = Counter(chat_id for ids in taken.values() for chat_id in ids)
    assert len(counts) == 600 and set(counts.values()) == {1}
    stored = _deliveries(engine)
    assert all(stored[chat_id][1] == worker for worker, ids in taken.items() for chat_id in ids)
    assert {attempts for _s, _w, attempts in stored.values()} == {0}  # claimed, not started


def test_migrate_moves_the_subscription_and_unsent_deliveries(engine: Engine) -> None:
    _subscribe(engine, -100, language="en", push_time=time(9, 15), chat_type="group")
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)
    deliveries.plan_deliveries(engine, DAY - timedelta(days=1), time(10, 0), DEFAULT_TIME)
    [sent] = deliveries.claim(engine, DAY - timedelta(days=1), "w", limit=1)
    deliveries.finish(engine, sent.delivery_id, "w", DeliveryStatus.SENT, message_id=1)

    chats.migrate(engine, -100, -1009)
    old, new = chats.get_chat(engine, -100), chats.get_chat(engine, -1009)
    assert old is not None and (old.subscribed, old.active, old.deactivated_reason) == (
        False, False, "migrated to -1009")
    assert new is not None and (new.chat_type, new.language, new.push_time, new.subscribed, new.active) == (
        "supergroup", "en", time(9, 15), True, True)
    with session_scope(engine) as session:
        rows = session.execute(
            select(models.Delivery.chat_id, models.Delivery.trade_date, models.Delivery.status)).all()
    # the unsent delivery moved to the new id; the one already sent stays with the old group (an older
    # day than the newest: no push plans it again, so the new id needs no record of it)
    assert sorted(rows) == [(-1009, DAY, DeliveryStatus.PENDING),
                            (-100, DAY - timedelta(days=1), DeliveryStatus.SENT)]
    assert deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME) == 0  # nothing planned twice
    chats.forget(engine, [-100, -1009])
    assert chats.get_chat(engine, -1009) is None and deliveries.delivery_counts(engine, DAY) == {}


def test_a_send_under_way_when_the_group_moves_is_not_repeated(engine: Engine) -> None:
    """The migration update arrives while a worker is sending to the old id: that send may still
    arrive, so the delivery stays with its worker and the new id is not planned the day. When the
    send is then refused as migrated, the worker's own migrate moves it, and it is sent anew."""
    _subscribe(engine, -200, chat_type="group")
    _subscribe(engine, -300, chat_type="group")
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)
    first, second = deliveries.claim(engine, DAY, "w", limit=2)
    assert deliveries.start(engine, first.delivery_id, "w") and deliveries.start(engine, second.delivery_id, "w")

    chats.migrate(engine, -200, -2009)  # the update, from the handler: no send named
    chats.migrate(engine, -300, -3009)
    assert _deliveries(engine) == {-200: (DeliveryStatus.SENDING, "w", 1), -2009: (DeliveryStatus.SKIPPED, "", 0),
                                   -300: (DeliveryStatus.SENDING, "w", 1), -3009: (DeliveryStatus.SKIPPED, "", 0)}
    assert deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME) == 0
    # the send to -200 arrived; the one to -300 came back refused
    assert deliveries.finish(engine, first.delivery_id, "w", DeliveryStatus.SENT, message_id=7)
    chats.set_language(engine, -3009, "en")  # chosen in the supergroup meanwhile: kept
    chats.migrate(engine, -300, -3009, sending=second.delivery_id)
    assert _deliveries(engine) == {-200: (DeliveryStatus.SENT, "w", 1), -2009: (DeliveryStatus.SKIPPED, "", 0),
                                   -3009: (DeliveryStatus.PENDING, "", 1)}
    supergroup = chats.get_chat(engine, -3009)
    assert supergroup is not None and (supergroup.language, supergroup.subscribed) == ("en", True)
    [again] = deliveries.claim(engine, DAY, "w2", limit=5)
    assert (again.chat_id, again.delivery_id, again.language) == (-3009, second.delivery_id, "en")


def test_a_planned_push_is_dropped_when_the_chat_no_longer_wants_it(engine: Engine) -> None:
    """Planned, not yet sent: /unsubscribe drops it (even from a worker's queue: start then refuses),
    a new push time plans it again at that time, a removed bot drops it; a send under way is left to
    its worker. Subscribing again the same day plans it anew."""
    for chat_id in (1, 2, 3, 4):
        _subscribe(engine, chat_id)
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)
    claims = {c.chat_id: c for c in deliveries.claim(engine, DAY, "w", limit=2)}  # chats 1 and 2
    assert deliveries.start(engine, claims[2].delivery_id, "w")
    chats.set_subscribed(engine, 1, False)
    chats.set_subscribed(engine, 2, False)
    chats.set_push_time(engine, 3, time(20, 0))
    chats.deactivate(engine, 4, "bot kicked", unsubscribe=True)
    assert _deliveries(engine) == {2: (DeliveryStatus.SENDING, "w", 1)}
    assert not deliveries.start(engine, claims[1].delivery_id, "w")  # gone from under the worker
    assert chats.get_chat(engine, 4).subscribed is False  # type: ignore[union-attr]
    # planned again: chat 3 at its new time, chat 1 once it subscribes again
    assert deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME) == 0
    chats.set_subscribed(engine, 1, True)
    assert deliveries.plan_deliveries(engine, DAY, time(20, 0), DEFAULT_TIME) == 2
    assert set(_deliveries(engine)) == {1, 2, 3}


def test_the_sandbox_push_leaves_real_chats_alone(engine: Engine) -> None:
    local = chats.LOCAL_CHAT_ID_FLOOR + 1
    _subscribe(engine, 7)
    _subscribe(engine, local)
    deliveries.plan_deliveries(engine, DAY - timedelta(days=1), time(10, 0), DEFAULT_TIME)
    assert deliveries.expire_before(engine, DAY, local_only=True) == 1
    with session_scope(engine) as session:
        rows = dict(session.execute(select(models.Delivery.chat_id, models.Delivery.status)).all())
    assert rows == {7: DeliveryStatus.PENDING, local: DeliveryStatus.FAILED}


def test_two_migrations_of_one_group_at_once(engine: Engine) -> None:
    """The migration update and a refused send move the same group at the same moment: both succeed
    (the one that finds the new chat created by the other runs again), and the result is one move."""
    errors: list[BaseException] = []

    def move(start: threading.Barrier, old: int, new: int) -> None:
        start.wait()
        try:
            chats.migrate(engine, old, new)
        except BaseException as exc:  # the test reports any failure
            errors.append(exc)

    for n in range(5):
        old, new = -600 - n, -6000 - n
        _subscribe(engine, old, chat_type="group")
        start = threading.Barrier(2)
        threads = [threading.Thread(target=move, args=(start, old, new)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        moved = chats.get_chat(engine, new)
        assert moved is not None and moved.subscribed and moved.active
        assert chats.get_chat(engine, old).subscribed is False  # type: ignore[union-attr]


def test_a_migration_that_loses_the_race_runs_again(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: the other migration of the group commits the new chat first, and this one's insert
    of it fails (IntegrityError); it runs again, finds the move made, and moves only what is left."""
    from sqlalchemy.exc import IntegrityError

    _subscribe(engine, -700, chat_type="group")
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)
    original, calls = chats._migrate, []

    def racing(*args: object) -> None:
        calls.append(args)
        if len(calls) == 1:
            original(*args)  # the other worker's migration, committed first
            raise IntegrityError("INSERT INTO chat", {}, Exception("duplicate key value"))
        original(*args)

    monkeypatch.setattr(chats, "_migrate", racing)
    chats.migrate(engine, -700, -7009)
    assert len(calls) == 2
    moved = chats.get_chat(engine, -7009)
    assert moved is not None and moved.subscribed and chats.get_chat(engine, -700).subscribed is False  # type: ignore[union-attr]
    assert _deliveries(engine) == {-7009: (DeliveryStatus.PENDING, "", 0)}


def test_data_is_not_late_on_days_the_exchanges_do_not_publish(engine: Engine) -> None:
    """Friday's data comes on Monday morning: on Saturday and Sunday nothing is late (no warning to
    the admins: bot.pipeline); past the stored calendar, every day is taken for a trading day."""
    from types import SimpleNamespace

    from bot.pipeline import publishes_on

    services = SimpleNamespace(engine=engine)
    thursday, friday, saturday, sunday, monday = (DAY + timedelta(days=n) for n in range(-1, 4))
    with session_scope(engine) as session:
        session.add_all([models.TradingDay(trade_date=thursday), models.TradingDay(trade_date=friday)])
    assert publishes_on(services, friday) and publishes_on(services, saturday)  # type: ignore[arg-type]
    with session_scope(engine) as session:
        session.add(models.TradingDay(trade_date=monday))
    assert [publishes_on(services, day) for day in (friday, saturday, sunday, monday)] == [  # type: ignore[arg-type]
        True, False, False, True]


def test_uploaded_chart_ids(engine: Engine) -> None:
    assert chats.get_file_id(engine, "summary:zh:2026-11-20:v1") is None
    chats.save_file_id(engine, "summary:zh:2026-11-20:v1", "AgAC-first")
    chats.save_file_id(engine, "summary:zh:2026-11-20:v1", "AgAC-second")  # re-uploaded: the newest id wins
    assert chats.get_file_id(engine, "summary:zh:2026-11-20:v1") == "AgAC-second"


def test_chart_ids_of_old_data_are_deleted_as_new_ones_come(engine: Engine) -> None:
    """Keys carry the data version: an upload older than FILE_ID_KEEP is never asked for again, and
    goes when the next chart is stored; a younger one stays."""
    from datetime import UTC, datetime

    chats.save_file_id(engine, "summary:zh:v1", "AgAC-old")
    chats.save_file_id(engine, "summary:zh:v2", "AgAC-recent")
    with session_scope(engine) as session:
        session.execute(update(models.ChartUpload).where(models.ChartUpload.cache_key == "summary:zh:v1")
                        .values(created_at=datetime.now(UTC) - chats.FILE_ID_KEEP - timedelta(hours=1)))
        session.execute(update(models.ChartUpload).where(models.ChartUpload.cache_key == "summary:zh:v2")
                        .values(created_at=datetime.now(UTC) - chats.FILE_ID_KEEP + timedelta(hours=1)))
    chats.save_file_id(engine, "summary:zh:v3", "AgAC-new")
    assert [chats.get_file_id(engine, f"summary:zh:v{n}") for n in (1, 2, 3)] == [None, "AgAC-recent", "AgAC-new"]


def test_a_notice_is_given_once(engine: Engine) -> None:
    """The admins' late-data warning of a date: the first claim wins, later ones (a restarted worker,
    another worker) do not; another date is another notice."""
    assert chats.first_notice(engine, "late:2026-11-23") is True
    assert chats.first_notice(engine, "late:2026-11-23") is False
    assert chats.first_notice(engine, "late:2026-11-24") is True
    results: list[bool] = []
    start = threading.Barrier(4)

    def claim() -> None:
        start.wait()
        results.append(chats.first_notice(engine, "late:2026-11-25"))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, False, False, True]


def test_watch_lists(engine: Engine) -> None:
    """A chat follows up to ten securities, in the order it added them; the push's claims carry them;
    a migrated group keeps them; a forgotten chat loses them."""
    _subscribe(engine, -5, chat_type="group")
    assert [chats.watch(engine, -5, code) for code in ("600519", "000001", "600519")] == ["added", "added", "already"]
    for i in range(8):
        chats.watch(engine, -5, f"60000{i}")
    assert chats.watch(engine, -5, "300750") == "full"
    assert chats.watches(engine, [-5, 99]) == {-5: ["600519", "000001", *(f"60000{i}" for i in range(8))]}
    assert chats.unwatch(engine, -5, "000001") is True and chats.unwatch(engine, -5, "000001") is False
    assert chats.watch(engine, -5, "300750") == "added"  # room again
    deliveries.plan_deliveries(engine, DAY, time(10, 0), DEFAULT_TIME)
    [claimed] = deliveries.claim(engine, DAY, "w", limit=1)
    assert claimed.watches == ("600519", *(f"60000{i}" for i in range(8)), "300750")

    chats.ensure_chat(engine, -105, "supergroup", "x", "zh")
    chats.watch(engine, -105, "600519")  # the new id already follows one of them
    chats.migrate(engine, -5, -105)
    # in the order they were added: the new id's own 600519 came after the old group's list
    assert chats.watches(engine, [-5, -105]) == {-105: [*(f"60000{i}" for i in range(8)), "300750", "600519"]}
    chats.forget(engine, [-105])
    assert chats.watches(engine, [-105]) == {}


def test_the_same_watch_twice_at_once_adds_it_once(engine: Engine) -> None:
    chats.ensure_chat(engine, 8, "private", "x", "zh")
    results: list[str] = []
    start = threading.Barrier(4)

    def add() -> None:
        start.wait()
        results.append(chats.watch(engine, 8, "600519"))

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["added", "already", "already", "already"]
    assert chats.watches(engine, [8]) == {8: ["600519"]}


def test_watches_at_once_never_pass_the_limit(engine: Engine) -> None:
    """Nine followed, five /watch of other codes at once: one is added, four find the list full."""
    chats.ensure_chat(engine, 9, "private", "x", "zh")
    for i in range(chats.MAX_WATCHES - 1):
        chats.watch(engine, 9, f"60000{i}")
    results: list[str] = []
    start = threading.Barrier(5)

    def add(code: str) -> None:
        start.wait()
        results.append(chats.watch(engine, 9, code))

    threads = [threading.Thread(target=add, args=(f"30000{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["added", "full", "full", "full", "full"]
    assert len(chats.watches(engine, [9])[9]) == chats.MAX_WATCHES
