"""The Dockerfile installs exactly requirements/lock.txt, then the package from its wheel (not editable), whose
package data holds the project files it reads; runs as a non-root user, and enters rlbind-bench. The wheel, built
and unpacked as the image installs it, finds attacks, recipes, the dataset catalogue and the demo zoo in itself."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):  # comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    return out


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"lock line not pinned with ==: {line!r}"
        pins[canonical(name)] = version.strip()
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def pip_installs() -> list[list[str]]:
    """The argument lists of every `pip install` in RUN instructions."""
    found = []
    for word, args in instructions():
        if word != "RUN":
            continue
        lexer = shlex.shlex(args, posix=True, punctuation_chars=True)  # quotes may hold `;` (python -c)
        lexer.whitespace_split = True
        commands, current = [], []
        for tok in lexer:
            if tok in ("&&", "||", ";", "|"):
                commands.append(current)
                current = []
            else:
                current.append(tok)
        for tokens in [*commands, current]:
            for i in range(len(tokens) - 1):
                if (tokens[i].endswith("pip") and tokens[i + 1] == "install") or (
                        tokens[i:i + 3] == ["-m", "pip", "install"]):
                    found.append(tokens[i + 2 + (tokens[i] == "-m"):])
                    break
    return found


def test_installs_exactly_the_lock_then_the_package_wheel_without_deps():
    installs = pip_installs()
    assert installs, "no pip install in the Dockerfile"
    lock_installs = [a for a in installs if "-r" in a and a[a.index("-r") + 1].endswith("requirements/lock.txt")]
    assert len(lock_installs) == 1
    copies = [args for word, args in instructions() if word == "COPY"]
    assert any("requirements/lock.txt" in c.split()[:-1] for c in copies), "the lock is not copied in"
    assert not [a for a in installs if "-e" in a or "--editable" in a], "the image must not install editable"
    wheels = [a for a in installs if any(re.fullmatch(r"\S*/rlbind_bench-\S*\.whl", t) for t in a)]
    assert len(wheels) == 1
    assert "--no-deps" in wheels[0]
    pins = lock_pins()
    for args in installs:
        skip_next = False
        for tok in args:
            if skip_next or tok.startswith("-") or tok.endswith(".whl"):
                skip_next = tok in ("-r", "-e", "-c", "--requirement", "--constraint", "-f", "--find-links")
                continue
            # Anything else named on a pip command line must be pinned to the lock's version.
            name, sep, version = tok.partition("==")
            assert sep, f"unpinned package {tok!r} installed outside the lock"
            assert pins.get(canonical(name)) == version, f"{tok} does not match the lock ({pins.get(canonical(name))})"


def test_lock_covers_the_project_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = lock_pins()
    for dep in deps:
        name, sep, version = dep.partition("==")
        if sep:
            assert pins.get(canonical(name)) == version.strip(), f"pyproject pins {dep}, lock has {pins.get(canonical(name))}"


def test_python_base_matches_the_project():
    base = next(args for word, args in instructions() if word == "FROM")
    assert re.match(r"python:3\.11[-.]", base.split()[0]), base
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert "3.11" in requires


def test_runs_as_non_root_user():
    users = [args for word, args in instructions() if word == "USER"]
    assert users, "no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_entrypoint_volumes_and_env():
    ins = instructions()
    entry = [args for word, args in ins if word == "ENTRYPOINT"]
    assert len(entry) == 1, 'ENTRYPOINT must use the exec form (no shell)'
    assert entry[0].startswith('['), 'ENTRYPOINT must use the exec form (no shell)'
    assert json.loads(entry[0]) == ["rlbind-bench"]
    volumes = set()
    for word, args in ins:
        if word == "VOLUME":
            volumes.update(json.loads(args) if args.startswith("[") else args.split())
    env = {}
    for word, args in ins:
        if word == "ENV":
            for tok in shlex.split(args):
                key, _, value = tok.partition("=")
                env[key] = value
    assert env.get("RLBIND_DATA_ROOT") in volumes
    assert env.get("RLBIND_CACHE_DIR") in volumes


@pytest.mark.parametrize("path", ["rlbind_bench", "pyproject.toml"])
def test_copies_what_the_wheel_needs(path):
    copies = [args.split()[:-1] for word, args in instructions() if word == "COPY"]
    assert any(path in c for c in copies), f"{path} is not copied into the image"


def wheel_stage_copies() -> list[str]:
    """The sources the wheel stage (the first FROM ... AS wheel) copies into its build folder."""
    copies, stage = [], 0
    for word, args in instructions():
        if word == "FROM":
            stage += 1
        elif word == "COPY" and stage == 1 and "--from" not in args:
            copies += args.split()[:-1]
    return copies


@pytest.mark.parametrize("path", ["attacks", "recipes", "datasets.yaml", "zoo/demo", "LICENSE"])
def test_the_wheel_stage_has_the_package_data(path):
    """What `run`, `train` and the demo read at run time is package data of the wheel (bundled.py)."""
    assert path in wheel_stage_copies(), f"{path} is not copied into the wheel's build folder"


def test_installs_the_demo_sources():
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert "scripts/install-demo-sources.sh" in runs


def _unpacked_wheel(tmp_path) -> Path:
    """The package as `pip install rlbind_bench-*.whl` lays it out: the wheel built as the Dockerfile builds it
    (from a copy of what its wheel stage copies), unpacked into a site folder."""
    src = tmp_path / "src"
    src.mkdir()
    for name in wheel_stage_copies():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "checkpoint"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "--wheel-dir", str(tmp_path / "wheel"), str(src)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "wheel").glob("rlbind_bench-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def test_the_wheel_built_as_the_image_builds_it_reads_its_own_project_files(tmp_path):
    site = _unpacked_wheel(tmp_path)
    empty = tmp_path / "work"  # the image's working directory: no project files in it
    empty.mkdir()
    code = textwrap.dedent("""
        import rlbind_bench
        from rlbind_bench.bundled import bundled_path
        from rlbind_bench.threats.registry import load_threats
        print(rlbind_bench.__file__)
        for name in ("attacks", "recipes", "datasets.yaml", "zoo"):
            print(bundled_path(name))
        print(len(load_threats()))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLBIND_")}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", code], cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    package, *bundled, n_threats = out.stdout.split()
    assert Path(package).is_relative_to(site)  # the installed copy, not the checkout
    for path in bundled:
        assert Path(path).is_relative_to(site), path
    assert int(n_threats) == len(list((ROOT / "attacks").glob("*.yaml"))) + 1  # and the built-in clean
