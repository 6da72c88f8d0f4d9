"""The Dockerfile installs exactly requirements/lock.txt, runs as a non-root user, and enters rlbind-bench."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
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
        for command in re.split(r"&&|;|\|\|", args):
            tokens = shlex.split(command)
            for i in range(len(tokens) - 1):
                if (tokens[i].endswith("pip") and tokens[i + 1] == "install") or (
                        tokens[i:i + 3] == ["-m", "pip", "install"]):
                    found.append(tokens[i + 2 + (tokens[i] == "-m"):])
                    break
    return found


def test_installs_exactly_the_lock_then_the_package_without_deps():
    installs = pip_installs()
    assert installs, "no pip install in the Dockerfile"
    lock_installs = [a for a in installs if "-r" in a and a[a.index("-r") + 1] == "requirements/lock.txt"]
    assert len(lock_installs) == 1
    copies = [args for word, args in instructions() if word == "COPY"]
    assert any("requirements/lock.txt" in c.split()[:-1] for c in copies), "the lock is not copied in"
    editable = [a for a in installs if "-e" in a]
    assert len(editable) == 1
    assert "--no-deps" in editable[0]
    assert editable[0][editable[0].index("-e") + 1] == "."
    pins = lock_pins()
    for args in installs:
        skip_next = False
        for tok in args:
            if skip_next or tok.startswith("-"):
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


@pytest.mark.parametrize("path", ["rlbind_bench", "attacks", "datasets.yaml", "pyproject.toml"])
def test_copies_what_the_package_needs(path):
    copies = [args.split()[:-1] for word, args in instructions() if word == "COPY"]
    assert any(path in c for c in copies), f"{path} is not copied into the image"
