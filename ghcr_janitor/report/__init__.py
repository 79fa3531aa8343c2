"""Render inventories, plans and results: tables, JSON, Markdown, metrics."""
