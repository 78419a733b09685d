"""The operator's status (storage/status.py, `marginbot status`, the admins' /status) on SQLite and
PostgreSQL: stored spans, the recent days' ingestion steps, subscriptions and pushes."""

from __future__ import annotations

from datetime import date, time

from sqlalchemy import Engine

from reports import text as report_text
from storage import chats, deliveries, models
from storage.database import bump_data_version, session_scope, upsert
from storage.models import DeliveryStatus
from storage.status import DayIngest, read_status

MON, TUE = date(2026, 11, 16), date(2026, 11, 17)


def _fill(engine: Engine) -> None:
    with session_scope(engine) as session:
        upsert(session, models.MarginSummary, [
            {"trade_date": d, "exchange": e, "rzye": 1e12, "source": "sse" if e == "SSE" else "szse"}
            for d in (MON, TUE) for e in ("SSE", "SZSE")])
        upsert(session, models.Turnover, [{"trade_date": MON, "exchange": "SSE", "amount": 5e11}])
        session.add_all([
            models.IngestStatus(trade_date=MON, source=s, status="done") for s in ("sse_summary", "szse_summary")
        ] + [
            models.IngestStatus(trade_date=TUE, source="sse_summary", status="done"),
            models.IngestStatus(trade_date=TUE, source="szse_detail", status="pending"),
            models.IngestStatus(trade_date=TUE, source="bse_summary", status="failed",
                                message="ReadTimeout: HTTPSConnectionPool(host='www.bse.cn') read timed out"),
        ])
        bump_data_version(session)
    for chat_id, kind in ((1, "private"), (2, "private"), (-3, "group"), (-4, "supergroup")):
        chats.ensure_chat(engine, chat_id, kind, "x", "zh")
        chats.set_subscribed(engine, chat_id, True)
    chats.deactivate(engine, 2, "blocked")
    deliveries.plan_deliveries(engine, MON, time(10, 0), time(9, 0))
    [first, *_] = deliveries.claim(engine, MON, "w", limit=10)
    deliveries.finish(engine, first.delivery_id, "w", DeliveryStatus.SENT, message_id=1)


def test_status_of_a_live_database(engine: Engine) -> None:
    _fill(engine)
    status = read_status(engine)
    assert (status.demo, status.data_version, status.latest_complete) == (False, 1, None)
    assert status.spans["margin"] == (MON, TUE) and status.spans["turnover"] == (MON, MON)
    assert status.spans["stocks"] is None and status.spans["index"] is None
    assert status.recent_ingest == [
        DayIngest(TUE, done=["sse_summary"], pending=["szse_detail"],
                  failed=[("bse_summary", "ReadTimeout: HTTPSConnectionPool(host='www.bse.cn') read timed out")]),
        DayIngest(MON, done=["sse_summary", "szse_summary"]),
    ]
    assert status.subscribers == {"private": 1, "group": 1, "supergroup": 1}  # the blocked chat is out
    assert status.recent_pushes == [(MON, {DeliveryStatus.CLAIMED: 2, DeliveryStatus.SENT: 1})]
    assert read_status(engine, days=1).recent_ingest[0].trade_date == TUE

    en = report_text.to_plain(report_text.render_status("en", status))
    assert ("2026-11-17: 1 done; not yet published: Shenzhen detail; failed: Beijing summary "
            "(ReadTimeout: HTTPSConnectionPool(host='www.bse.cn') read timed out)") in en
    assert "2026-11-16: 2 done" in en
    assert "per-stock detail: none" in en and "margin summary: 2026-11-16 to 2026-11-17" in en
    assert "Subscriptions: private 1 · groups 2" in en and "2026-11-16: sending 2 · sent 1" in en
    zh = report_text.to_plain(report_text.render_status("zh", status))
    assert "2026-11-17：完成 1 项；未发布：深市明细；失败：北交所汇总（ReadTimeout" in zh
    assert "2026-11-16：发送中 2 · 已发 1" in zh


def test_status_fits_one_message(engine: Engine) -> None:
    """Long failure messages on many days: whole lines give way to an ellipsis under 4,096 characters."""
    _fill(engine)
    status = read_status(engine)
    long = DayIngest(TUE, failed=[(step, "x" * 500) for step in ("sse_summary", "szse_summary", "bse_summary",
                                                               "sse_detail", "szse_detail", "bse_detail")])
    status.recent_ingest = [long] * 12
    html = report_text.render_status("en", status)
    assert report_text.visible_length(html) <= report_text.MESSAGE_LIMIT and html.endswith("\n…")
    assert html.count("<b>") == html.count("</b>")
