"""Set-up's global side effects: the solc link ezkl uses must survive the clone that made it,
and the README's example output folders stay out of git."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "scripts" / "install-solc-adapter.sh"
TOOLS = ROOT / "tools"

needs_tools = pytest.mark.skipif(
    shutil.which("node") is None or not (TOOLS / "node_modules" / "solc").exists(),
    reason="needs node and the npm tools (scripts/setup.sh)",
)


def make_clone(where: Path) -> Path:
    """A throw-away checkout holding what the installer reads: its script and tools/ (no anvil)."""
    clone = where / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy2(INSTALL, clone / "scripts")
    shutil.copytree(TOOLS, clone / "tools", ignore=shutil.ignore_patterns("@foundry-rs", ".bin"))
    return clone


def install(clone: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"} | {"HOME": str(home)}
    return subprocess.run(
        ["bash", str(clone / "scripts" / INSTALL.name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def solc_version(executable: Path) -> str:
    return subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=60, check=True).stdout


@needs_tools
def test_svm_solc_link_survives_the_clone_that_made_it(tmp_path):
    home = tmp_path / "home"
    clone = make_clone(tmp_path)
    install(clone, home)
    link = home / ".svm" / "0.8.20" / "solc-0.8.20"
    target = link.resolve()
    assert link.is_symlink() and not target.is_relative_to(clone) and not target.is_relative_to(ROOT)
    assert target.parent == home / ".local" / "share" / "stakelearn" / "solc-0.8.20"
    shutil.rmtree(clone)
    assert "Version: 0.8.20" in solc_version(link)


@needs_tools
def test_second_install_is_quiet_and_fast_and_leaves_a_native_solc_alone(tmp_path):
    home = tmp_path / "home"
    clone = make_clone(tmp_path)
    assert "installing" in install(clone, home).stderr
    started = time.monotonic()
    assert install(clone, home).stderr == ""
    assert time.monotonic() - started < 5
    link = home / ".svm" / "0.8.20" / "solc-0.8.20"
    link.unlink()
    link.write_text("#!/bin/sh\necho native\n")  # a native solc someone put there
    install(make_clone(tmp_path / "other"), home)
    assert not link.is_symlink() and link.read_text().endswith("echo native\n")


def test_this_machines_svm_link_points_outside_this_checkout():
    """After scripts/setup.sh: the link ezkl uses is the shared adapter copy (or a native solc)."""
    link = Path.home() / ".svm" / "0.8.20" / "solc-0.8.20"
    if not link.is_symlink() or link.readlink().name != "solc-adapter.js":
        pytest.skip("no adapter link here (a native solc, or set-up has not run)")
    assert not link.resolve().is_relative_to(ROOT), f"{link} points into this checkout"
    assert "Version: 0.8.20" in solc_version(link)


def test_readme_output_folders_are_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (ROOT / "README.md").read_text()
    folders = set(re.findall(r"--out ([a-z][\w.-]*)/?", readme)) | {"demo-output"}
    assert {"round", "acc", "run1", "demo-output"} <= folders
    tracked = {"docs"}  # rewritten on purpose: the committed report rebuilt from its committed data
    for folder in sorted(folders - tracked):
        probe = subprocess.run(["git", "check-ignore", "-q", f"{folder}/proof.json"], cwd=ROOT, check=False)
        assert probe.returncode == 0, f"{folder}/ is not in .gitignore"
