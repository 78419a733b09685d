"""Handlers grouped by concern: the flood gate, reports, chat commands (start, help, subscription,
settings), watch lists, inline mode, membership, the operators' /status, errors."""
