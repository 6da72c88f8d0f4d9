"""Leaderboards from result folders (merge, Markdown, JSON, HTML, plots) and the regression gate (check)."""
