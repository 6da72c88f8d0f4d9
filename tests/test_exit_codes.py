"""The command line's contract with scripts and CI: exit codes, one-line errors, --version, --debug/-v/-q
anywhere on the line, and which warnings a user sees. Commands are faked through `list`'s LISTERS where a
failure has to be provoked; real subprocesses where the process itself matters (signals, imports)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
import warnings
from pathlib import Path

import rlbind_bench
from rlbind_bench.cli import lists, main
from rlbind_bench.cli.logs import THIRD_PARTY_NOISE
from rlbind_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _cli(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.strip()]


def _python(code: str, *args: str, cwd: Path | None = None, **kw) -> subprocess.Popen:
    """A fresh interpreter that imports this checkout (PYTHONPATH as the tests see it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _fake_lister(monkeypatch, fn) -> None:
    monkeypatch.setitem(lists.LISTERS, "suites", fn)


# ------------------------------------------------------------------------------------------------ --version
def test_version_is_the_package_version_from_one_source():
    """`rlbind-bench --version` prints rlbind_bench.__version__, exit 0, and pyproject.toml takes its
    version from that attribute (no second copy to drift).

    Caught: the version string hard-coded in the parser (`version="rlbind-bench 0.1"`), and a static
    `version = "0.1.0"` put back into pyproject's [project] table."""
    proc = _python("from rlbind_bench.cli import main; raise SystemExit(main(['--version']))")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert out.strip() == f'rlbind-bench {rlbind_bench.__version__}', (out, err)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rlbind_bench.__version__"}


# ------------------------------------------------------------------------------------------- exit 2 and 3
def test_internal_error_exits_3_with_one_line(monkeypatch, capsys):
    """A bug (any exception that is not a UserError) exits 3 with one line naming it and pointing to
    --debug; with --debug (before or after the subcommand) the traceback comes too, still exit 3.

    Caught: main's `except Exception` handler removed (the exception escapes main), and the hint dropped
    from the line."""
    def broken(args):
        raise RuntimeError("shard index out of range\nsecond line of detail")

    _fake_lister(monkeypatch, broken)
    rc, _, err = _cli(["list", "suites"], capsys)
    assert rc == 3
    assert "Traceback" not in err
    assert _lines(err) == ["rlbind-bench: internal error: RuntimeError: shard index out of range; "
                           "rerun with --debug for the traceback"]
    for argv in (["--debug", "list", "suites"], ["list", "suites", "--debug"]):
        rc, _, err = _cli(argv, capsys)
        assert rc == 3
        assert "Traceback (most recent call last)" in err
        assert "def broken" not in err
        assert _lines(err)[-1] == "rlbind-bench: internal error: RuntimeError: shard index out of range", argv


def test_user_error_exits_2_and_debug_adds_the_traceback(monkeypatch, capsys):
    """A UserError is one line and exit 2; `--debug` after the subcommand is accepted (not "unrecognized
    arguments") and adds the traceback without changing the exit code.

    Caught: the global flags not added to the subcommands (`list suites --debug` then fails to parse:
    the traceback assertion fails), and --debug re-raising the UserError (exit code lost)."""
    def mistaken(args):
        raise UserError("dataset folder /x has no classes")

    _fake_lister(monkeypatch, mistaken)
    rc, _, err = _cli(["list", "suites"], capsys)
    assert rc == 2
    assert _lines(err) == ["rlbind-bench: error: dataset folder /x has no classes"]
    rc, _, err = _cli(["list", "suites", "--debug"], capsys)
    assert rc == 2
    assert "Traceback" in err
    assert _lines(err)[-1] == "rlbind-bench: error: dataset folder /x has no classes"
    rc, _, err = _cli(["list", "suites", "--no-such-flag"], capsys)
    assert rc == 2
    assert len(_lines(err)) == 1
    assert "unrecognized arguments: --no-such-flag" in err


def test_closed_stdout_is_not_an_internal_error(monkeypatch, capsys):
    """`rlbind-bench list models | head -1`: the reader leaving is exit 141 (SIGPIPE's shell code), silent.

    Caught: the BrokenPipeError handler removed (reported as an internal error, exit 3)."""
    def piped(args):
        raise BrokenPipeError(32, "Broken pipe")

    _fake_lister(monkeypatch, piped)
    rc, _, err = _cli(["list", "suites"], capsys)
    assert rc == 141
    assert err == ""


def test_ctrl_c_exits_130_without_traceback():
    """SIGINT to a running command (a real process, a real signal): exit 130, one line, no traceback.

    Caught: main's `except KeyboardInterrupt` removed (Python prints the traceback and dies of SIGINT,
    returncode -2)."""
    proc = _python("""
        import sys, time
        from rlbind_bench.cli import lists, main

        def slow(args):
            print("ready", flush=True)
            time.sleep(120)

        lists.LISTERS["suites"] = slow
        sys.exit(main(["list", "suites"]))
    """)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert _lines(err) == ["rlbind-bench: interrupted; rerun the same command to resume"]


# ---------------------------------------------------------------------------------------- logging, -v/-q
def test_verbosity_flags_anywhere_and_env(monkeypatch, capsys):
    """-v/-q before or after the subcommand and $RLBIND_LOG_LEVEL set what is logged; a bad level is a
    user error; the handler is gone after main returns (tests call main many times in one process).

    Caught: the subcommand's -v ignored (`_globals` returning `args.verbose_top` only), the env variable
    ignored in `level_from`, and the handler left on the root logger (`removeHandler` dropped)."""
    def chatty(args):
        log = logging.getLogger("rlbind_bench.fake")
        log.debug("debug-line")
        log.info("info-line")
        log.warning("warning-line")
        return []

    _fake_lister(monkeypatch, chatty)
    monkeypatch.delenv("RLBIND_LOG_LEVEL", raising=False)
    handlers = list(logging.getLogger().handlers)
    expect = {(): "warning", ("-v",): "info", ("-vv",): "debug", ("-q",): "error", ("-v", "-v"): "debug"}
    for flags, level in expect.items():
        split = [*flags[:1], "list", "suites", *flags[1:]]  # one before the subcommand, the rest after
        for argv in ([*flags, "list", "suites"], ["list", "suites", *flags], split):
            rc, _, err = _cli(argv, capsys)
            shown = {name for name in ("debug", "info", "warning") if f"{name}-line" in err}
            assert rc == 0, argv
            assert shown == {'debug': {'debug', 'info', 'warning'}, 'info': {'info', 'warning'}, 'warning': {'warning'}, 'error': set()}[level], argv
    assert "rlbind-bench: warning: warning-line" in _cli(["list", "suites"], capsys)[2]
    monkeypatch.setenv("RLBIND_LOG_LEVEL", "debug")
    assert "debug-line" in _cli(["list", "suites"], capsys)[2]
    assert "info-line" not in _cli(["list", "suites", "-qq"], capsys)[2]  # debug, two levels less: warning
    monkeypatch.setenv("RLBIND_LOG_LEVEL", "chatty")
    rc, _, err = _cli(["list", "suites"], capsys)
    assert rc == 2
    assert len(_lines(err)) == 1
    assert "RLBIND_LOG_LEVEL" in err
    assert logging.getLogger().handlers == handlers


# ----------------------------------------------------------------------------------------------- warnings
def test_project_warnings_shown_named_noise_hidden(monkeypatch, capsys):
    """A warning from the project's code reaches stderr (one line); the named third-party messages do
    not, unless --debug; -q hides warnings with the rest of the log. (pytest's own filters, which ignore
    UserWarning in this suite, must not decide what the CLI shows.)

    Caught: `warnings.filterwarnings("ignore")` for non-debug runs (the CLI's old behaviour: nothing
    shown), and a noise filter widened to its whole category (`message=pattern` dropped)."""
    noise = {UserWarning: "The 'torchvision.transforms._functional_video' module is deprecated since 0.12",
             FutureWarning: "`torch.jit.script_method` is deprecated. Please switch to `torch.compile`."}
    assert {cat for cat, _, _ in THIRD_PARTY_NOISE} == set(noise)

    def warns(args):
        warnings.warn("linf-pgd: Linf eps 4 >= 1 covers the whole [0,1] box; did you mean 4/255?", stacklevel=1)
        warnings.warn("a future change in the output", FutureWarning, stacklevel=1)
        for category, text in noise.items():
            warnings.warn(text, category, stacklevel=1)
        return []

    _fake_lister(monkeypatch, warns)
    rc, _, err = _cli(["list", "suites"], capsys)
    assert rc == 0
    shown = _lines(err)
    assert len(shown) == 2
    assert all(x.startswith("rlbind-bench: warning: ") for x in shown)
    assert "did you mean 4/255?" in shown[0]
    assert "a future change" in shown[1]
    rc, _, err = _cli(["list", "suites", "--debug"], capsys)
    assert all(text in err for text in noise.values())
    assert len(_lines(err)) == 4
    rc, _, err = _cli(["-q", "list", "suites"], capsys)
    assert err == ""


def test_eps_in_wrong_units_is_refused_with_a_hint(checkpoints, photo_dir, tmp_path):
    """`--eps 4` (meant: 4/255) through the real CLI in a fresh process: exit 2, one `rlbind-bench:` line
    suggesting 4/255, no traceback and no result file; `--allow-large-eps` runs it.

    Caught: the CLI's old `warnings.filterwarnings("ignore")` (exit 0, accuracy 0.000 and "checks ok"), and the
    budget check disabled in the runner (exit 0)."""
    argv = ["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}", "--suite", "clean",
            "--threats", "linf-pgd", "--eps", "4", "--steps", "1", "--n-samples", "2", "--no-progress"]
    proc = _python("import sys; from rlbind_bench.cli import main; raise SystemExit(main(sys.argv[1:]))",
                   *argv, "--out", str(tmp_path / "refused"), cwd=tmp_path)
    _, err = proc.communicate(timeout=600)
    lines = _lines(err)
    assert proc.returncode == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith('rlbind-bench: '), err
    assert "did you mean 4/255?" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "refused" / "samples.parquet").exists()
    proc = _python("import sys; from rlbind_bench.cli import main; raise SystemExit(main(sys.argv[1:]))",
                   *argv, "--allow-large-eps", "--out", str(tmp_path / "allowed"), cwd=tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert (tmp_path / "allowed" / "samples.parquet").is_file()


def test_named_noise_matches_what_the_libraries_really_say():
    """Importing what languagebind imports in every run, in a fresh process: without
    --debug stderr is empty; with --debug each named warning appears (so the filters hide real messages,
    and a library that rewords one makes this test fail instead of the noise coming back unnoticed).

    Caught: a pattern that no longer matches (e.g. `_functional_video` misspelt in THIRD_PARTY_NOISE)."""
    code = """
        import sys
        from rlbind_bench.cli import lists, main

        def imports(args):
            from rlbind_bench import _compat

            # What `import languagebind` (every run) imports and warns about, without transformers' cost.
            _compat.apply("torchvision_functional_tensor")
            import pytorchvideo.transforms.transforms  # noqa: F401  torch.jit.script_method
            import torchvision.transforms._transforms_video  # noqa: F401  both torchvision messages
            return []

        lists.LISTERS["suites"] = imports
        sys.exit(main(["list", "suites", *sys.argv[1:]]))
    """
    quiet = _python(code)
    _, err = quiet.communicate(timeout=300)
    assert quiet.returncode == 0, err
    assert err == '', err
    loud = _python(code, "--debug")
    _, err = loud.communicate(timeout=300)
    assert loud.returncode == 0
    for needle in ("torchvision.transforms._functional_video", "torchvision.transforms._transforms_video",
                   "torch.jit.script_method"):
        assert sum(needle in x for x in _lines(err)) == 1, (needle, err)
