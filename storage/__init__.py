"""Storage: sqlmodel tables, the database, and every way data gets in (akshare, CSV, demo)."""
