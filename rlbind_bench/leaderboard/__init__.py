"""Leaderboards from result folders: merge, Markdown, JSON, HTML, plots (the regression gate is rlbind_bench.gate)."""
