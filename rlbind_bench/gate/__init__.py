"""The regression gate behind `rlbind-bench check`: compare (cell matching, tests), report (table, Markdown, JUnit)."""
