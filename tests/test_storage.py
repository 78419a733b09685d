"""Schema, upserts and metadata on SQLite and PostgreSQL."""

from datetime import date

from sqlalchemy import func, inspect, select
from sqlmodel import Session

from storage import models
from storage.database import bump_data_version, data_version, is_empty, session_scope, upsert


def test_schema_has_every_table(engine):
    names = set(inspect(engine).get_table_names())
    for table in ["margin_summary", "stock_margin", "turnover", "index_daily", "industry_class",
                  "industry_name", "sector_daily", "trading_day", "ingest_status", "dataset_meta",
                  "chat", "delivery", "chart_upload", "alembic_version"]:
        assert table in names


def test_upsert_updates_by_natural_key(engine):
    day = date(2024, 4, 11)
    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [{"trade_date": day, "exchange": "SZSE", "rzye": 707767000000.0}])
    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [{"trade_date": day, "exchange": "SZSE", "rzye": 707768000000.0}])
    with Session(engine) as s:
        rows = s.execute(select(models.MarginSummary)).scalars().all()
    assert len(rows) == 1 and rows[0].rzye == 707768000000.0
    assert not is_empty(engine)


def test_stock_rows_get_ids_and_chunked_upsert(engine):
    rows = [{"trade_date": date(2024, 1, 2), "code": f"{600000 + i}", "exchange": "SSE", "rzye": float(i)}
            for i in range(1000)]
    with session_scope(engine) as s:
        assert upsert(s, models.StockMargin, rows) == 1000
        upsert(s, models.StockMargin, rows[:10])
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(models.StockMargin)).scalar() == 1000


def test_data_version_bumps(engine):
    assert data_version(engine) == 0
    with session_scope(engine) as s:
        bump_data_version(s)
        bump_data_version(s)
    assert data_version(engine) == 2
