"""The typed bindings mirror the contracts field for field: a reordered struct or a new enum
member in Solidity fails here, not as a value read from the wrong position."""

from __future__ import annotations

import re
from dataclasses import fields

from stakelearn.pipeline.contracts.types import Periods, TaskParams, TaskState, TaskStatus
from stakelearn.verifier_contracts.build import ROOT, load_artifact


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _function(name: str) -> dict:
    return next(item for item in load_artifact("StakeLearnProtocol").abi if item.get("name") == name)


def test_task_params_are_the_structs_fields_in_order():
    (params,) = _function("createTask")["inputs"]
    assert [f.name for f in fields(TaskParams)] == [_snake(c["name"]) for c in params["components"]]


def test_task_state_is_the_task_views_outputs_in_order():
    assert [f.name for f in fields(TaskState)] == [_snake(o["name"]) for o in _function("task")["outputs"]]


def _constructor_config() -> dict:
    constructor = next(item for item in load_artifact("StakeLearnProtocol").abi if item["type"] == "constructor")
    (config,) = constructor["inputs"]
    return config


def test_the_constructor_takes_one_named_config_in_deploy_protocols_order():
    # deploy_protocol passes (base fee, registry, slash, outlier, periods, work) as one tuple.
    config = _constructor_config()
    assert config["internalType"] == "struct IStakeLearnProtocol.ProtocolConfig"
    assert [(c["name"], c["type"]) for c in config["components"]] == [
        ("baseFee", "uint256"),
        ("registry", "address"),
        ("slashBps", "uint256"),
        ("outlierBps", "uint256"),
        ("periods", "tuple"),
        ("workBps", "uint256"),
    ]


def test_periods_are_the_constructors_struct_in_order():
    (periods,) = [c for c in _constructor_config()["components"] if c["type"] == "tuple"]
    # Python names say the unit: enrollment_seconds is the struct's enrollment.
    assert [f.name.removesuffix("_seconds") for f in fields(Periods)] == [
        _snake(c["name"]) for c in periods["components"]
    ]


def test_task_status_is_the_solidity_enum():
    sources = "\n".join(path.read_text() for path in (ROOT / "src").rglob("*.sol"))
    (body,) = re.findall(r"enum Status\s*{([^}]*)}", sources)
    members = [re.sub(r"//.*", "", line).strip(" ,") for line in body.splitlines()]
    assert [m.upper() for m in members if m] == [status.name for status in TaskStatus]


def test_a_struct_reads_the_same_from_a_call_and_from_an_event():
    values = (b"\1" * 32, 5, 1, 3, 1, 9_000, 3, 10, "0x" + "11" * 20, b"\2" * 32, b"\3" * 32, 32, "0x" + "22" * 20, 1)
    (params,) = _function("createTask")["inputs"]
    as_event = {component["name"]: value for component, value in zip(params["components"], values)}
    assert TaskParams.from_abi(values) == TaskParams.from_abi(as_event)
    assert TaskParams.from_abi(values).as_abi() == values
    assert TaskParams.from_abi(values).escrow == 30
