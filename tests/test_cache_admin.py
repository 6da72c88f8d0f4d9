"""The user cache's cap and housekeeping: least recently used entries go first and the newest stay, writes and
opening the cache enforce the cap, a read counts as a use, writes in progress and files that are not ours are
never touched; `rlbind-bench cache info|prune|clear` report and delete, and refuse bad input in one line."""

from __future__ import annotations

import os
import time

import pytest
import torch

from rlbind_bench import caches
from rlbind_bench.cli import build_parser, main
from rlbind_bench.threats.corruptions import cache as cc

SEVERITIES = (1, 2, 3, 4, 5)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(caches.MAX_SIZE_ENV, raising=False)
    return tmp_path / "cache"


def _make(root, severities=SEVERITIES, cap=None, sample="a.png"):
    """Real entries from the real corruption path (gaussian noise on a tiny image): severity -> path."""
    cache = cc.CorruptionCache(root / "corruptions", cap)
    refs = cache.ensure("image", sample, torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)),
                        [cc.Variant("gaussian_noise", s, 0) for s in severities])
    return {v.severity: cache.path(key) for v, key in refs.items()}


def _age(paths, now=None):
    """Backdate the entries: the first is used longest ago (one hour apart)."""
    now = time.time() if now is None else now
    for i, path in enumerate(paths):
        t = now - 3600 * (len(paths) - i)
        os.utime(path, (t, t))


def _sizes(paths):
    return sum(p.stat().st_size for p in paths)


def _cli(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cap_evicts_least_recently_used_first_and_keeps_the_newest(root):
    made = _make(root)
    order = [made[s] for s in (3, 1, 5, 2, 4)]  # used in this order, not in the order they were written
    _age(order)
    removed = caches.enforce_cap(_sizes(order[-2:]), root)
    assert [e.path for e in removed] == order[:3]
    assert [p.exists() for p in order] == [False, False, False, True, True]


def test_a_read_counts_as_a_use(root):
    made = _make(root)
    order = [made[s] for s in SEVERITIES]
    _age(order)
    cache = cc.CorruptionCache(root / "corruptions")
    before = order[0].stat().st_mtime
    assert cache.load(order[0].stem, (3, 32, 32)) is not None  # the oldest, read now
    # The cache touches what it reads: the order must not depend on atime, which noatime mounts never update.
    assert order[0].stat().st_mtime > before + 3000
    caches.enforce_cap(order[0].stat().st_size, root)
    assert [p.exists() for p in order] == [True, False, False, False, False]


def test_writes_enforce_the_cap_but_spare_what_was_just_written(root):
    old = _make(root, (1, 2, 3))
    _age([old[1], old[2], old[3]])
    cap = caches.SizeCap(_sizes(old.values()), root, grace_s=600)
    new = _make(root, (4, 5), cap=cap)
    assert [old[s].exists() for s in (1, 2, 3)] == [False, False, True]
    assert all(p.exists() for p in new.values())
    # Entries used within the grace period stay even over the cap: a worker's are still in the prefetch queue.
    caches.enforce_cap(1, root, keep_newer_than=600)
    assert all(p.exists() for p in new.values())
    assert not old[3].exists()


def test_opening_the_cache_enforces_the_configured_cap(root, monkeypatch):
    made = _make(root)
    order = [made[s] for s in SEVERITIES]
    _age(order)
    monkeypatch.setenv(caches.MAX_SIZE_ENV, str(_sizes(order[-1:])))
    assert cc.open_cache(root / "corruptions", caches.size_cap()) is not None
    assert [p.exists() for p in order] == [False, False, False, False, True]
    monkeypatch.setenv(caches.MAX_SIZE_ENV, "none")
    assert caches.size_cap() is None


def test_writes_in_progress_and_foreign_files_are_never_touched(root):
    made = _make(root)
    entry = made[1]
    in_progress = entry.with_name(f"{entry.name}.123-abcd.tmp")
    in_progress.write_bytes(entry.read_bytes()[:100])
    foreign = root / "huggingface" / "hub" / "model.bin"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"x" * 10_000)
    _age([*made.values(), in_progress, foreign])
    caches.enforce_cap(1, root)
    assert not any(p.exists() for p in made.values())
    assert in_progress.exists()
    assert foreign.exists()
    assert caches.remove_stale_temporaries(root) == 0  # an hour old: possibly a slow writer
    caches.clear(root)
    assert in_progress.exists()
    assert foreign.exists()
    assert caches.remove_stale_temporaries(root, now=time.time() + 2 * caches.STALE_TMP_S) == 1
    assert not in_progress.exists()
    assert foreign.exists()


def test_info_reports_entries_size_and_cap_per_kind(root, capsys, monkeypatch):
    made = _make(root, (1, 2, 3))
    (root / "text").mkdir()
    (root / "text" / "classemb-0123.pt").write_bytes(b"t" * 2048)
    monkeypatch.setenv(caches.MAX_SIZE_ENV, "2G")
    rc, out, err = _cli(["cache", "info"], capsys)
    assert rc == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"cache: {root} (RLBIND_CACHE_DIR)"
    assert lines[1] == f"cap: 2.0 GiB ({caches.MAX_SIZE_ENV})"
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    total = _sizes(made.values())
    assert rows["corruptions"][1:4] == ["3", f"{total / 1024:.1f}", "KiB"]
    assert rows["corruptions"][4] == str(root / "corruptions")
    assert rows["text"][1:4] == ["1", "2.0", "KiB"]
    assert rows["digests"][1:3] == ["0", "0"]
    assert rows["total"][1:4] == ["4", f"{(total + 2048) / 1024:.1f}", "KiB"]


def test_prune_to_a_size_and_by_age(root, capsys):
    made = _make(root)
    order = [made[s] for s in SEVERITIES]
    _age(order)  # 5, 4, 3, 2 and 1 hours ago
    rc, out, _ = _cli(["cache", "prune", "--older-than", "150m"], capsys)
    assert rc == 0
    assert [p.exists() for p in order] == [False, False, False, True, True]
    assert "pruned 3 entries" in out
    rc, out, _ = _cli(["cache", "prune", "--max-size", str(_sizes(order[-1:]))], capsys)
    assert rc == 0
    assert [p.exists() for p in order] == [False, False, False, False, True]
    assert "pruned 1 entries" in out


def test_clear_asks_and_deletes_every_entry(root, capsys, monkeypatch):
    made = _make(root)
    foreign = root / "huggingface" / "x"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("keep")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)  # a script: no one to answer the question
    rc, out, err = _cli(["cache", "clear"], capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "--yes" in err
    assert all(p.exists() for p in made.values())
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    rc, out, _ = _cli(["cache", "clear"], capsys)
    assert rc == 0
    assert "nothing deleted" in out
    assert all(p.exists() for p in made.values())
    rc, out, _ = _cli(["cache", "clear", "--yes"], capsys)
    assert rc == 0
    assert "deleted 5 entries" in out
    assert not any(p.exists() for p in made.values())
    assert not list((root / "corruptions").iterdir())  # the emptied prefix folders go too
    assert foreign.read_text() == "keep"


def test_clear_one_kind(root, capsys):
    made = _make(root)
    (root / "digests").mkdir()
    digest = root / "digests" / "k.sha256"
    digest.write_text("0" * 64)
    rc, _, _ = _cli(["cache", "clear", "--kind", "digests", "--yes"], capsys)
    assert rc == 0
    assert not digest.exists()
    assert all(p.exists() for p in made.values())


@pytest.mark.parametrize("argv", [
    ["cache", "prune", "--max-size", "5x"],
    ["cache", "prune", "--older-than", "soon"],
    ["cache", "info", "--kind", "models"],
    ["cache", "info", "--yes"],
    ["cache", "clear", "--max-size", "1G"],
    ["cache", "prune", "--kind", "text"],
    ["cache", "tidy"],
    ["run", "--cache-max-size", "lots"],
])
def test_bad_input_is_one_line_and_exit_2(root, capsys, argv):
    made = _make(root, (1,))
    rc, out, err = _cli(argv, capsys)
    assert rc == 2, (out, err)
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("rlbind-bench: error:")
    assert made[1].exists()


def test_bad_cap_in_the_environment_is_one_line(root, capsys, monkeypatch):
    monkeypatch.setenv(caches.MAX_SIZE_ENV, "five gigs")
    rc, _, err = _cli(["cache", "info"], capsys)
    assert rc == 2
    assert caches.MAX_SIZE_ENV in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "expected"), [("5G", 5 * 1024**3), ("500M", 500 * 1024**2), ("1.5GiB", 1536 * 1024**2),
                                                ("4096", 4096), ("none", 0), ("0", 0)])
def test_run_takes_the_cap_as_a_flag(text, expected):
    assert build_parser().parse_args(["run", "--cache-max-size", text]).cache_max_size == expected
