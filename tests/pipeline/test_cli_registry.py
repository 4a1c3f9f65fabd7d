"""The CLI's lazy registry: `stakelearn --help` names every command without importing any command
module (nor ezkl or torch); each command's module adds its own arguments when it runs."""

import json
import pkgutil
import subprocess
import sys

import pytest

import stakelearn.pipeline.cli as cli
from stakelearn.pipeline.cli import COMMANDS, build_parser, main
from stakelearn.pipeline.federation.attacks import ATTACKS

HELPERS = {"options", "__main__"}  # the package's modules that are not commands

LOADED_BY_HELP = """
import json, sys
from stakelearn.pipeline.cli import main
try:
    main(["--help"])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_help_imports_no_command_module_nor_ezkl_nor_torch():
    result = subprocess.run([sys.executable, "-c", LOADED_BY_HELP], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    *help_lines, last = result.stdout.strip().splitlines()
    loaded = json.loads(last)
    assert loaded["code"] == 0
    commands = {name for name in loaded["modules"] if name.startswith("stakelearn.pipeline.cli.")}
    assert commands == set(), commands
    assert not {name for name in loaded["modules"] if name.split(".")[0] in ("ezkl", "torch")}
    listed = "\n".join(help_lines)
    for name, command in COMMANDS.items():
        assert name in listed and command.help.split()[0] in listed


def test_every_command_module_is_registered():
    modules = {module.name for module in pkgutil.iter_modules(cli.__path__)} - HELPERS
    assert {command.module.rsplit(".", 1)[1] for command in COMMANDS.values()} == modules


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit:
        main([name, "--help"])
    assert exit.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"usage: stakelearn {name}") and "options:" in printed


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_is_documented(name):
    commands = next(action for action in build_parser(name)._actions if action.dest == "command")
    undocumented = [action.dest for action in commands.choices[name]._actions if not action.help]
    assert undocumented == []


@pytest.mark.parametrize("argv", [[], ["no-such-command"], ["--no-such-option"]])
def test_a_wrong_command_line_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2 and "usage: stakelearn" in capsys.readouterr().err


def test_robustness_attacks_each_attack_once_by_default():
    attacks = build_parser("robustness").parse_args(["robustness"]).attacks
    assert sorted(attacks) == sorted(set(attacks)) == sorted(ATTACKS)
