"""Database tables. Money in 元 and quantities in 股 in every column; dates are trade dates.

Natural keys carry unique constraints so that every writer can upsert; indexes follow the
queries the reports make (a date range for one scope, one stock's history, one day's sectors).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum

from sqlalchemy import BigInteger, Column, ColumnElement, Index, Integer, UniqueConstraint, and_, or_
from sqlmodel import Field, SQLModel

EXCHANGES = ("SSE", "SZSE", "BSE")
BSE_MARGIN_START = date(2022, 12, 12)  # first day of margin trading on BSE: no BSE in the market before
# 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
BIGID = BigInteger().with_variant(Integer(), "sqlite")
# "ALL" rows come from sources that only know the whole market (Eastmoney's account history).
SUMMARY_SCOPES = (*EXCHANGES, "ALL")


def _now() -> datetime:
    return datetime.now(UTC)


class MarginSummary(SQLModel, table=True):
    """Daily margin totals of one exchange (or ALL = whole market from a market-only source)."""

    __tablename__ = "margin_summary"
    __table_args__ = (UniqueConstraint("trade_date", "exchange", name="uq_margin_summary"),)

    id: int | None = Field(default=None, primary_key=True)
    trade_date: date = Field(index=True)
    exchange: str = Field(max_length=4)
    rzye: float | None = None  # 融资余额
    rzmre: float | None = None  # 融资买入额
    rzche: float | None = None  # 融资偿还额
    rzche_derived: bool = False  # True when rzche = rzye(T-1) + rzmre(T) - rzye(T)
    rqye: float | None = None  # 融券余额
    rqyl: float | None = None  # 融券余量 (股)
    rqmcl: float | None = None  # 融券卖出量 (股)
    rqmce: float | None = None  # 融券卖出额
    rzrqye: float | None = None  # 两融余额
    source: str = Field(default="", max_length=32)


class MarketDaily(SQLModel, table=True):
    """The market's daily margin totals, one row per trade date, kept in step with margin_summary by
    database triggers (migration 0003): every report reads three years of them, and summing the
    exchanges' rows at each read cost more than the rest of a report's queries together.

    Market = the sum of the exchanges' rows where they include SSE and SZSE and know 两融余额 or
    the ALL row does not either (migration 0007), or where no ALL row exists; otherwise the ALL row. A sum is NULL where
    one summed row lacks the figure. rqmce is always the ALL row's (only market-wide sources know it).
    `exchanges` counts the rows summed (0: the ALL row stands in); `members` is a bitmask of them,
    bit k for EXCHANGES[k] (all bits for ALL).
    """

    __tablename__ = "market_daily"

    trade_date: date = Field(primary_key=True)
    rzye: float | None = None
    rzmre: float | None = None
    rzche: float | None = None
    rqye: float | None = None
    rqyl: float | None = None
    rqmcl: float | None = None
    rqmce: float | None = None
    rzrqye: float | None = None
    exchanges: int = 0
    members: int = 0


class StockMargin(SQLModel, table=True):
    """Per-security daily margin detail; funds and ETFs are kept and marked with is_fund."""

    __tablename__ = "stock_margin"
    __table_args__ = (
        UniqueConstraint("trade_date", "code", name="uq_stock_margin"),
        Index("ix_stock_margin_code_date", "code", "trade_date"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIGID, primary_key=True, autoincrement=True))
    trade_date: date = Field(index=True)
    code: str = Field(max_length=8)
    exchange: str = Field(max_length=4)
    name: str = Field(default="", max_length=32)
    is_fund: bool = False
    rzye: float | None = None
    rzmre: float | None = None
    rzche: float | None = None
    # True when rzche = rzye(T-1) + rzmre(T) - rzye(T) (SZSE and BSE omit it): made again whenever the
    # previous trade date's balance changes. NULL on rows stored before migration 0010: see
    # stock_rzche_derivable.
    rzche_derived: bool | None = False
    rqyl: float | None = None
    rqmcl: float | None = None
    rqchl: float | None = None  # 融券偿还量 (股)
    rqye: float | None = None  # SSE detail has none: estimated from rqyl x close where prices exist
    rqye_estimated: bool = False


# SZSE and BSE publish no per-stock 融资偿还额: what is stored for them was derived.
RZCHE_NEVER_PUBLISHED = ("SZSE", "BSE")


def stock_rzche_derivable() -> ColumnElement[bool]:
    """The StockMargin rows whose 融资偿还额 is made from the balances (again, when the day before
    changes): none stored, or one derived; a row stored before migration 0010 (mark NULL) counts as
    derived where its exchange publishes none."""
    sm = StockMargin
    return or_(sm.rzche.is_(None), sm.rzche_derived.is_(True),  # type: ignore[union-attr,attr-defined]
               and_(sm.rzche_derived.is_(None), sm.exchange.in_(RZCHE_NEVER_PUBLISHED)))  # type: ignore[union-attr,attr-defined]


class Turnover(SQLModel, table=True):
    """Daily turnover (成交额, 元) of one exchange; a_share_only tells A shares from whole-exchange amount."""

    __tablename__ = "turnover"
    __table_args__ = (UniqueConstraint("trade_date", "exchange", name="uq_turnover"),)

    id: int | None = Field(default=None, primary_key=True)
    trade_date: date = Field(index=True)
    exchange: str = Field(max_length=4)
    amount: float
    a_share_only: bool = False  # False: index `amount` fallback (B shares included)
    source: str = Field(default="", max_length=32)


class IndexDaily(SQLModel, table=True):
    """Daily close (and amount, 元, where known) of an index: sh000001, sz399001, SW 801010, ..."""

    __tablename__ = "index_daily"
    __table_args__ = (UniqueConstraint("symbol", "trade_date", name="uq_index_daily"),)

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=12)
    trade_date: date = Field(index=True)
    close: float
    amount: float | None = None


class IndustryClass(SQLModel, table=True):
    """Shenwan classification point in time: a stock's class from start_date until the next row."""

    __tablename__ = "industry_class"
    __table_args__ = (UniqueConstraint("code", "start_date", name="uq_industry_class"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=8, index=True)
    start_date: date
    sw_code: str = Field(max_length=8)
    sw_l1_code: str = Field(max_length=8, index=True)  # first two digits of sw_code + "0000"


class IndustryName(SQLModel, table=True):
    """Shenwan level-1 industry: names (2021 scheme first) and its sector index symbol."""

    __tablename__ = "industry_name"

    sw_l1_code: str = Field(primary_key=True, max_length=8)
    name_zh: str = Field(max_length=16)
    name_en: str = Field(default="", max_length=48)
    index_symbol: str | None = Field(default=None, max_length=12)  # e.g. 801010


class SectorDaily(SQLModel, table=True):
    """Pre-aggregated per-sector daily figures, so that a sector report never scans stock rows."""

    __tablename__ = "sector_daily"
    __table_args__ = (UniqueConstraint("trade_date", "sw_l1_code", name="uq_sector_daily"),)

    id: int | None = Field(default=None, primary_key=True)
    trade_date: date = Field(index=True)
    sw_l1_code: str = Field(max_length=8)
    rzye: float = 0.0
    rzmre: float = 0.0
    rzche: float | None = None  # unknown where a member's is (see storage.aggregate.sector_rows)
    rqye: float = 0.0
    stock_count: int = 0


class StockSpikeDaily(SQLModel, table=True):
    """Pre-computed 5-day 融资余额 rise of each non-fund stock and its z-score, so that the signals
    report never scans stock rows (storage.spikes.spike_scores; storage.aggregate.rebuild_stock_spikes).

    Only rows a report can show are kept: rzye >= 5e7 元 and a rise (change_pct > 0); zscore is
    NULL where the stock has fewer than 60 known 5-day changes before the day.
    """

    __tablename__ = "stock_spike_daily"
    __table_args__ = (
        UniqueConstraint("trade_date", "code", name="uq_stock_spike_daily"),
        Index("ix_stock_spike_daily_date_z", "trade_date", "zscore"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIGID, primary_key=True, autoincrement=True))
    trade_date: date
    code: str = Field(max_length=8)
    rzye: float  # 融资余额 (元)
    change_pct: float  # 5-day % change of rzye
    zscore: float | None = None  # change_pct against the stock's own 5-day changes over the 60 days before


class TradingDay(SQLModel, table=True):
    """The exchange calendar: one row per trading day."""

    __tablename__ = "trading_day"

    trade_date: date = Field(primary_key=True)


class IngestStatus(SQLModel, table=True):
    """Per (trade date, source) ingestion state: done, pending (not published yet) or failed."""

    __tablename__ = "ingest_status"
    __table_args__ = (UniqueConstraint("trade_date", "source", name="uq_ingest_status"),)

    id: int | None = Field(default=None, primary_key=True)
    trade_date: date = Field(index=True)
    source: str = Field(max_length=32)
    status: str = Field(max_length=16)
    rows: int = 0
    attempts: int = 0
    message: str = Field(default="", max_length=500)
    updated_at: datetime = Field(default_factory=_now)


class DatasetMeta(SQLModel, table=True):
    """Key/value facts about the stored data: `demo` (true/false), `data_version` (bumped on each write),
    and one-time notices already given (`notice:...`, storage.chats.first_notice)."""

    __tablename__ = "dataset_meta"

    key: str = Field(primary_key=True, max_length=32)
    value: str = Field(max_length=200)


class Chat(SQLModel, table=True):
    """A private chat or group the bot knows: language, push time, subscription state."""

    __tablename__ = "chat"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chat_type: str = Field(default="private", max_length=16)
    title: str = Field(default="", max_length=128)
    language: str = Field(default="zh", max_length=4)
    # Picked in /settings: from then on the chat keeps it. Until then a private chat follows the
    # user's Telegram language (storage.chats.ensure_chat), as the command menus do.
    language_chosen: bool = False
    push_time: time | None = None  # None = as soon as the day is complete (default push time)
    subscribed: bool = False
    # The forum topic the push goes to (the one /subscribe was sent in); None: the chat, or General.
    push_thread_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    active: bool = True  # False after 403 (blocked, kicked)
    deactivated_reason: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)


class DeliveryStatus(StrEnum):
    """Where a Delivery stands (storage.deliveries tells the lifecycle); stored as the plain string."""

    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"
    SKIPPED = "skipped"  # a migrated group's delivery of a date its new id already had


class Delivery(SQLModel, table=True):
    """One daily push to one chat for one trade date; the unique key makes it arrive at most once."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("chat_id", "trade_date", name="uq_delivery"),
        Index("ix_delivery_status", "trade_date", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    trade_date: date
    # pending -> claimed (by a worker) -> sending -> sent | failed | unconfirmed; pending again to retry
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    claimed_by: str = Field(default="", max_length=64)
    claimed_at: datetime | None = None  # the claim's lease: renewed while the worker lives
    attempts: int = 0  # sends started
    not_before: datetime | None = None  # a retry waits until then (backoff, or a 429's retry_after)
    message_id: int | None = None
    error: str = Field(default="", max_length=500)
    updated_at: datetime = Field(default_factory=_now)


class Watch(SQLModel, table=True):
    """A security a chat follows: its line is added to the chat's daily push (/watch 600519)."""

    __tablename__ = "watch"
    __table_args__ = (UniqueConstraint("chat_id", "code", name="uq_watch"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    code: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=_now)


class ChartUpload(SQLModel, table=True):
    """A chart uploaded once to Telegram, reused by file_id (cache key = report, args, language, data version)."""

    __tablename__ = "chart_upload"

    cache_key: str = Field(primary_key=True, max_length=200)
    file_id: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=_now)


class IndexMember(SQLModel, table=True):
    """Constituents of an index (e.g. CSI 300 = 000300): every list fetched that differed from the one
    before, each under `as_of`, the date of its file (the list in force from that day on)."""

    __tablename__ = "index_member"
    __table_args__ = (UniqueConstraint("symbol", "as_of", "code", name="uq_index_member"),)

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=12, index=True)
    code: str = Field(max_length=8)
    as_of: date
