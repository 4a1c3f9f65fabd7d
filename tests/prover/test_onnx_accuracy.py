"""Any ONNX classifier's accuracy, proven (real ezkl): a small CNN and the digits MLP counted as
their quantised models count, within 2 of the float models; the folder verified anywhere from
the files it ships; tampering refused; the params commitment is the round's aggregate's."""

import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from sklearn.datasets import load_digits

from stakelearn.circuits import onnx_accuracy as surgery
from stakelearn.errors import InputError, ProofError
from stakelearn.models.digits import DigitsClassifier, export_onnx, flatten
from stakelearn.models.quantize import FixedPoint, quantize
from stakelearn.prover.accuracy import BATCHES, proof_set_commitments, verify_accuracy
from stakelearn.prover.chunked import ChunkCircuit, chunk_root
from stakelearn.prover.circuit import RoundCircuit, prepare
from stakelearn.prover.commitments import commit, felts
from stakelearn.prover.onnx_accuracy import (
    ONNX_FILE,
    OnnxAccuracyCircuit,
    paired_chunked_onnx_circuits,
    paired_onnx_circuits,
)
from stakelearn.prover.onnx_proof import default_input_range, prove_onnx_accuracy, quantized_parameters

SCALE_BITS, SAMPLES = 9, 8


class TinyCNN(torch.nn.Module):
    """Conv(1, 4, 3) -> ReLU -> MaxPool(2) -> Flatten -> Linear(36, 10): 410 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(36, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def digits(shape: tuple[int, ...]):
    """sklearn's digits as x = pixels / 16 in ``shape`` per sample: 1,400 to train, the rest held out."""
    pixels, labels = load_digits(return_X_y=True)
    x = (pixels / 16).reshape(-1, *shape).astype(np.float32)
    return (x[:1400], labels[:1400]), (x[1400:], labels[1400:])


def trained_onnx(net: torch.nn.Module, shape: tuple[int, ...], path, steps: int = 300) -> bytes:
    """``net`` trained ``steps`` steps on the digits, exported to ONNX (its bytes)."""
    torch.manual_seed(0)
    (x, y), _ = digits(shape)
    x, y = torch.tensor(x), torch.tensor(y)
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(steps):
        batch = torch.randint(0, len(y), (64,))
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
        optimizer.step()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and what models.digits uses
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net.eval(), torch.zeros(1, *shape), str(path), input_names=["x"], output_names=["logits"], dynamo=False
        )
    return path.read_bytes()


def own_circuit(model: bytes, x: np.ndarray) -> tuple[OnnxAccuracyCircuit, np.ndarray]:
    """The circuit of ``model`` with its own parameters (m = 1), and those parameters quantized."""
    parsed = onnx.load_from_string(model)
    params = quantized_parameters(surgery.model_parameters(parsed, surgery.default_layout(parsed)), SCALE_BITS)
    circuit = OnnxAccuracyCircuit.of(
        model,
        samples=SAMPLES,
        scale_bits=SCALE_BITS,
        model_bound=int(np.abs(params).max()),
        input_range=default_input_range(x, SCALE_BITS),
    )
    return circuit, params


@pytest.fixture(scope="module")
def cnn_proof(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn")
    model = trained_onnx(TinyCNN(), (1, 8, 8), folder / "cnn.onnx")
    _, (x, y) = digits((1, 8, 8))
    x, y = x[:SAMPLES], y[:SAMPLES]
    circuit, params = own_circuit(model, x)
    outcome = prove_onnx_accuracy(params, x, y, circuit, folder / "accuracy")
    return folder / "accuracy", outcome, circuit


def test_an_unsupported_op_is_refused_by_name():
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [2], [1.0, 1.0]) for n in "sbmv"]
    graph = helper.make_graph(
        [node],
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        inits,
    )
    with pytest.raises(InputError, match="uses BatchNormalization, which the accuracy circuit cannot prove: fold"):
        surgery.check_ops(helper.make_model(graph))


def test_a_layout_that_leaves_a_parameter_out_is_refused(tmp_path):
    model = onnx.load_from_string(trained_onnx(TinyCNN(), (1, 8, 8), tmp_path / "cnn.onnx", steps=0))
    layout = surgery.default_layout(model)
    assert [name for name, _ in layout] == list(TinyCNN().state_dict())  # the FL vector's order
    with pytest.raises(InputError, match="leaves out 'fc.bias'"):
        surgery.check_layout(model, layout[:-1])


def test_chunks_and_the_weight_one_over_m_keep_the_quantised_count(tmp_path):
    """The lifted graph in floats (onnx's reference evaluator): the params in padded chunks count
    as the whole vector does; an aggregate of m = 2 (read at scale s + 1) exactly as one model;
    of m = 3 (a Mul by 1/3 rounded to 2^-s) within one sample of it."""
    model = onnx.load_from_string(trained_onnx(TinyCNN(), (1, 8, 8), tmp_path / "cnn.onnx", steps=100))
    layout = surgery.default_layout(model)
    q = quantized_parameters(surgery.model_parameters(model, layout), SCALE_BITS)
    _, (x, y) = digits((1, 8, 8))
    x, y = x[:32], y[:32]

    def count(m: int, chunk: int = 0) -> int:
        t = surgery.input_scale(SCALE_BITS, m)
        graph = surgery.accuracy_graph(model, layout, 32, SCALE_BITS, m, chunk, input_range=(0, 2**t))
        parts = surgery.parameter_parts(m * q, chunk)
        return surgery.reference_count(graph, parts, surgery.quantize_samples(x, t), y, t)

    whole = count(1)
    assert abs(whole - surgery.float_count(model, x, y)) <= 2
    assert count(1, chunk=128) == whole  # 4 inputs of 128, the last zero-padded
    assert count(2) == whole
    assert abs(count(3) - whole) <= 1


@pytest.mark.slow  # the CNN's accuracy proof (logrows 17): about 70 s to set up and prove
def test_the_cnn_proven_counts_what_the_quantised_model_counts(cnn_proof):
    folder, outcome, circuit = cnn_proof
    assert (circuit.features, circuit.classes, circuit.model_parts) == (64, 10, 1)
    assert outcome.correct == outcome.quantized_correct
    assert abs(outcome.correct - outcome.float_correct) <= 2
    assert verify_accuracy(folder).correct == outcome.correct
    # the public layout: [correct, range_error, range_tag]; the set is committed, right after the params
    proof = json.loads((folder / BATCHES / "batch-000" / "proof.json").read_text())
    values = [int.from_bytes(bytes.fromhex(v), "little") for v in proof["instances"][0]]
    assert values == [outcome.correct, 0, 0]
    assert [c.hex() for c in proof_set_commitments(bytes(proof["proof"]), circuit)] == outcome.set_commitments[:2]


def _edited_copy(folder, tmp_path, edit):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    edit(copy / BATCHES / "batch-000")
    return copy


def _edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.slow  # the CNN's accuracy proof (logrows 17): about 70 s to set up and prove
def test_a_tampered_count_is_refused(cnn_proof, tmp_path):
    def other_count(batch):
        count = felts([cnn_proof[1].correct - 1])[0]
        _edit_json(batch / "proof.json", lambda p: p["instances"][0].__setitem__(0, count))

    with pytest.raises(ProofError):
        verify_accuracy(_edited_copy(cnn_proof[0], tmp_path, other_count))


@pytest.mark.slow  # the CNN's accuracy proof (logrows 17): about 70 s to set up and prove
def test_an_edited_input_file_is_refused(cnn_proof, tmp_path):
    def other_pixel(batch):
        _edit_json(batch / "input.json", lambda d: d["input_data"][-2].__setitem__(10, felts([1])[0]))

    with pytest.raises(ProofError, match="edited after proving"):
        verify_accuracy(_edited_copy(cnn_proof[0], tmp_path, other_pixel))


def test_the_graph_counts_the_values_out_of_range_and_evaluates_the_rest(tmp_path):
    """The lifted graph in floats: x beyond the calibrated input range and labels that are no class
    are counted in range_error (each replaced by an in-range value first, so the circuit still
    proves), an in-range set has range_error 0."""
    from onnx.reference import ReferenceEvaluator

    model = onnx.load_from_string(trained_onnx(TinyCNN(), (1, 8, 8), tmp_path / "cnn.onnx", steps=30))
    layout = surgery.default_layout(model)
    q = quantized_parameters(surgery.model_parameters(model, layout), SCALE_BITS)
    _, (x, y) = digits((1, 8, 8))
    x_int, y = surgery.quantize_samples(x[:8], SCALE_BITS), y[:8].copy()
    lo, hi = int(x_int.min()), int(x_int.max())
    graph = surgery.accuracy_graph(model, layout, 8, SCALE_BITS, input_range=(lo, hi))

    def range_error(x_int, y) -> int:
        feeds = dict(zip([i.name for i in graph.graph.input], [q, x_int, y]))
        feeds = {k: (np.asarray(v, dtype=np.float64) / 2**SCALE_BITS).astype(np.float32) for k, v in feeds.items()}
        return int(ReferenceEvaluator(graph).run(["range_error_out"], feeds)[0].ravel()[0])

    assert range_error(x_int, y) == 0
    x_bad = x_int.copy()
    x_bad[0, 0, 0, 0], x_bad[3, 0, 2, 2] = hi + 1, lo - 1
    y[5], y[6] = 10, -1
    assert range_error(x_bad, y) == 4


@pytest.mark.slow  # the CNN's accuracy proof (logrows 17): about 70 s to set up and prove
def test_another_model_in_the_folder_is_refused(cnn_proof, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(cnn_proof[0], copy)
    (copy / ONNX_FILE).write_bytes(
        trained_onnx(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), (1, 8, 8), tmp_path / "l.onnx")
    )
    with pytest.raises(ProofError, match="not the model the proof is about"):
        verify_accuracy(copy)


@pytest.mark.slow  # the CNN's accuracy proof (logrows 17): about 70 s to set up and prove
def test_verify_under_an_empty_home_prints_the_count(cnn_proof, tmp_path):
    folder, outcome, _ = cnn_proof
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", "verify", str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "STAKELEARN_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert re.search(rf"\b{outcome.correct} of {SAMPLES} correct", result.stdout), result.stdout
    assert f"float model: {outcome.float_correct} of {SAMPLES} correct" in result.stdout
    assert not any(home.iterdir())  # nothing rebuilt


@pytest.mark.slow
def test_the_digits_mlp_proven_counts_what_the_quantised_model_counts(tmp_path):
    """models.digits' MLP (64 -> 16 -> 10), exported by models.digits as a client exports it."""
    net = DigitsClassifier(16)
    trained_onnx(net, (64,), tmp_path / "trained.onnx")
    model = export_onnx(flatten(net), 16, tmp_path / "mlp.onnx").read_bytes()
    assert [n.op_type for n in onnx.load_from_string(model).graph.node] == ["Gemm", "Relu", "Gemm"]
    _, (x, y) = digits((64,))
    x, y = x[:SAMPLES], y[:SAMPLES]
    circuit, params = own_circuit(model, x)
    assert np.array_equal(params, quantized_parameters(flatten(net), SCALE_BITS))  # the FL vector's layout
    outcome = prove_onnx_accuracy(params, x, y, circuit, tmp_path / "accuracy")
    assert outcome.correct == outcome.quantized_correct
    assert abs(outcome.correct - outcome.float_correct) <= 2


@pytest.mark.slow
def test_the_params_commitment_is_the_rounds_aggregate_commitment(tmp_path):
    """A round of m = 2 (1/m free at scale s + 1) paired with the CNN's accuracy circuit: the
    accuracy proof over the aggregate carries the commitment the round's key gives it."""
    model = trained_onnx(TinyCNN(), (1, 8, 8), tmp_path / "cnn.onnx")
    _, (x, y) = digits((1, 8, 8))
    x, y = x[:SAMPLES], y[:SAMPLES]
    parsed = onnx.load_from_string(model)
    weights = surgery.model_parameters(parsed, surgery.default_layout(parsed))
    fixed_point = FixedPoint(SCALE_BITS, clip=4.0)
    round_circuit = RoundCircuit(n=4, f=0, m=2, d=len(weights), max_int=fixed_point.max_int, num_inner_cols=2)
    paired_round, accuracy = paired_onnx_circuits(
        round_circuit, model, SAMPLES, SCALE_BITS, default_input_range(x, SCALE_BITS, m=2)
    )
    rng = np.random.default_rng(3)
    updates = [quantize(weights + rng.normal(0, 0.01, weights.shape), fixed_point) for _ in range(2)]
    aggregate = np.sum(updates, axis=0)
    outcome = prove_onnx_accuracy(
        aggregate, x, y, accuracy, tmp_path / "accuracy", float_parameters=aggregate / 2 ** (SCALE_BITS + 1)
    )
    round_key = prepare(paired_round)
    assert outcome.model_commitment == commit(aggregate, round_key.vk, round_key.settings, round_key.srs.path).hex()
    assert outcome.correct == outcome.quantized_correct and abs(outcome.correct - outcome.float_correct) <= 2


@pytest.mark.slow  # the CNN's accuracy proof (logrows 17): about 70 s to set up and prove
def test_prove_accuracy_takes_any_onnx_model_and_a_parameter_vector(cnn_proof, tmp_path):
    """`stakelearn prove-accuracy --model --parameters`: the float vector (here the model's own
    parameters) quantized at --scale, proven as the library proves it."""
    folder, outcome, circuit = cnn_proof
    _, (x, y) = digits((1, 8, 8))
    np.savez(tmp_path / "eval.npz", x=x[:SAMPLES], y=y[:SAMPLES])
    (tmp_path / "model.onnx").write_bytes(circuit.onnx)
    np.save(tmp_path / "vector.npy", surgery.model_parameters(circuit.model, circuit.layout))
    args = ["--model", "model.onnx", "--evaluation", "eval.npz", "--parameters", "vector.npy", "--out", "acc"]
    result = subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", "prove-accuracy", *args, "--scale", str(SCALE_BITS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"proven: {outcome.correct} of {SAMPLES} correct; float model: {outcome.float_correct}" in result.stdout
    assert verify_accuracy(tmp_path / "acc").model_commitment == outcome.model_commitment


@pytest.mark.slow
def test_a_model_aggregated_in_chunks_is_proven_over_its_chunk_root(tmp_path):
    """A round in chunks of 256 (d = 410: two chunks, the last zero-padded) paired with the CNN's
    accuracy circuit: the proof's params commitment (their chunk root) is the chunk circuit's."""
    model = trained_onnx(TinyCNN(), (1, 8, 8), tmp_path / "cnn.onnx")
    _, (x, y) = digits((1, 8, 8))
    x, y = x[:SAMPLES], y[:SAMPLES]
    parsed = onnx.load_from_string(model)
    weights = surgery.model_parameters(parsed, surgery.default_layout(parsed))
    fixed_point = FixedPoint(SCALE_BITS, clip=4.0)
    chunk, accuracy = paired_chunked_onnx_circuits(
        ChunkCircuit(4, 0, 2, 256, fixed_point.max_int, num_inner_cols=2),
        model,
        SAMPLES,
        SCALE_BITS,
        default_input_range(x, SCALE_BITS, m=2),
    )
    aggregate = 2 * quantize(weights, fixed_point)
    outcome = prove_onnx_accuracy(aggregate, x, y, accuracy, tmp_path / "accuracy")
    assert accuracy.model_parts == 2
    key = prepare(chunk)
    parts = [commit(part, key.vk, key.settings, key.srs.path) for part in surgery.parameter_parts(aggregate, 256)]
    assert outcome.model_commitment == chunk_root(parts).hex()
    assert outcome.correct == outcome.quantized_correct
