"""Before any key set-up a round that cannot fit is refused; the cache can be seen and pruned."""

from .test_cli_third_party import CIRCUIT, run_cli


def test_round_too_large_is_refused_before_set_up_then_cache_shown_and_pruned(update_files, tmp_path):
    home = {"STAKELEARN_HOME": str(tmp_path / "home")}
    result = run_cli(
        "prove", *update_files, *CIRCUIT, "--out", tmp_path / "r", env={**home, "STAKELEARN_MEMORY_MB": "1"}
    )
    last = result.stderr.strip().splitlines()[-1]  # after the compile's progress lines
    assert result.returncode == 1 and last.startswith("stakelearn: error:") and "needs about" in last, result.stderr
    assert "GB is available" in last and "Traceback" not in result.stderr
    assert not list((tmp_path / "home").glob("circuits/*/keys-*"))  # no keys were set up
    assert not (tmp_path / "home" / "srs").exists()  # nor an SRS made
    assert not (tmp_path / "r").exists()

    assert run_cli("prove", *update_files, *CIRCUIT, "--out", tmp_path / "r", env=home).returncode == 0
    (tmp_path / "home" / "circuits" / ".abc.tmp-x").mkdir()  # what a killed set-up leaves
    listed = run_cli("cache", env=home)
    assert listed.returncode == 0
    for kind in ("circuit", "keys", "srs", "leftover"):
        assert f"  {kind} " in listed.stdout, listed.stdout
    assert "round circuit n=5 d=16" in listed.stdout

    pruned = run_cli("cache", "--prune", env=home)
    assert pruned.returncode == 0 and "freed" in pruned.stdout
    assert not list((tmp_path / "home" / "circuits").iterdir())
    assert list((tmp_path / "home" / "srs").glob("*.srs"))  # kept: minutes to make at large k
    assert run_cli("cache", "--prune", "--srs", env=home).returncode == 0
    assert not list((tmp_path / "home" / "srs").glob("*.srs"))
