"""Rendering: figures from storage through analytics, into Jinja2 text, matplotlib charts and JSON."""
