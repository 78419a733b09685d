"""Handlers grouped by concern: reports, subscriptions, settings, inline, membership, errors."""
