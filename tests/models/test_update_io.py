"""What the update is: one ONNX layout for every client of a round, 1-D .npy vectors, and how
many values the clip cuts (pure checks; the CLI's messages are in tests/pipeline/test_cli_updates.py)."""

import numpy as np
import pytest
import torch

from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint, count_clipped, quantize
from stakelearn.models.update_io import clip_warning, layout_difference, load_updates, read_update

LINEAR = (("weight", (4, 3)), ("bias", (4,)))


def test_equal_layouts_and_npy_vectors_have_no_difference():
    assert layout_difference([LINEAR, None, LINEAR], ["a", "b", "c"]) is None
    assert layout_difference([None, None], ["a", "b"]) is None


def test_layout_difference_names_first_client_and_tensor():
    # Same length (16) either way: only names and shapes tell the exports apart.
    other = (("weight", (8, 1)), ("bias", (8,)))
    message = layout_difference([None, LINEAR, LINEAR, other, other], ["n.npy", "c1", "c2", "c3", "c4"])
    assert (
        message
        == "client 3 (c3): tensor 0 is 'weight' of shape (8, 1), but in client 1 (c1) it is 'weight' of shape (4, 3)"
    )


def test_layout_difference_in_order_and_count():
    swapped = (LINEAR[1], LINEAR[0])
    assert "tensor 0 is 'bias'" in layout_difference([LINEAR, swapped], ["a", "b"])
    longer = LINEAR + (("extra", (1,)),)
    assert layout_difference([longer, LINEAR], ["a", "b"]) == (
        "client 1 (b): tensor 2 is missing, but in client 0 (a) it is 'extra' of shape (1,)"
    )


def test_count_clipped_counts_what_quantize_clips():
    fp = FixedPoint(scale_bits=7, clip=1.0)
    values = np.array([0.5, 1.0, 1.003, -1.003, 1.01, -2.0, 5.0])  # 1.003 rounds to 128: not clipped
    assert count_clipped(values, fp) == 3
    scaled = np.rint(values * 128)
    assert np.count_nonzero(quantize(values, fp) != scaled) == 3


def test_clip_warning_says_how_many_and_what_to_do():
    assert clip_warning(3, "c3.onnx", 812, 1626, 1.0) == (
        "client 3 (c3.onnx): 812 of 1,626 values (49.9 %) beyond the clip ±1.0 were clipped; raise --clip"
    )
    assert "(< 0.1 %)" in clip_warning(0, "a", 1, 100_000, 2)


def test_load_updates_warns_per_clipped_client_and_keeps_values(tmp_path):
    paths = []
    for i, values in enumerate([np.zeros(4), np.array([0.0, 3.0, -3.0, 0.5]), np.full(4, 0.25)]):
        paths.append(tmp_path / f"c{i}.npy")
        np.save(paths[-1], values)
    lines = []
    stacked = load_updates(paths, FixedPoint(scale_bits=7, clip=1.0), warn=lines.append)
    assert lines == ["client 1 (c1.npy): 2 of 4 values (50.0 %) beyond the clip ±1.0 were clipped; raise --clip"]
    assert stacked[1].tolist() == [0.0, 3.0, -3.0, 0.5]  # clipping stays quantization's job


def test_read_update_refuses_a_matrix(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.zeros((4, 4)))
    with pytest.raises(InputError, match=r"must be a 1-D vector, got shape \(4, 4\); save np.ravel"):
        read_update(path)


def test_read_update_refuses_a_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory; an UPDATE is a client's .onnx model or .npy vector file"):
        read_update(tmp_path)


def test_read_update_returns_onnx_layout(tmp_path):
    path = tmp_path / "m.onnx"
    torch.onnx.export(torch.nn.Linear(3, 4), torch.zeros(1, 3), str(path), dynamo=False)
    values, layout = read_update(path)
    assert values.shape == (16,) and layout == LINEAR


def test_folded_batchnorm_export_is_told_apart(tmp_path):
    """Eval export folds BatchNorm into the layer before it: fewer tensors, other names."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    folded, plain = tmp_path / "folded.onnx", tmp_path / "plain.onnx"
    torch.onnx.export(model.eval(), torch.zeros(1, 1, 5, 5), str(folded), dynamo=False)
    torch.onnx.export(model.eval(), torch.zeros(1, 1, 5, 5), str(plain), dynamo=False, do_constant_folding=False)
    layouts = [read_update(path)[1] for path in (plain, folded)]
    assert layouts[0] != layouts[1]
    with pytest.raises(InputError, match="updates differ in model layout: client 1 \\(folded.onnx\\): tensor 0"):
        load_updates([plain, folded])
