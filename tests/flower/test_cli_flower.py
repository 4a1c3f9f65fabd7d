"""`stakelearn flower` refuses bad input in one line, before it starts any process."""

import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).parent / "stakelearn"


def run(*args, cwd=None):
    return subprocess.run([str(CLI), "flower", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_a_folder_without_run_json_is_one_line(tmp_path):
    result = run("--run-dir", tmp_path / "none", "--rpc-url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"stakelearn: error: {tmp_path / 'none'} is not a run folder (run.json is missing): "
        "`stakelearn demo --out DIR` makes one"
    ]
