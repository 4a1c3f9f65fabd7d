"""The digits task's data splits, model flattening, local training and ONNX export."""

import numpy as np
import pytest

from stakelearn.errors import InputError
from stakelearn.models.digits import (
    LocalTraining,
    accuracy,
    build,
    export_onnx,
    flatten,
    initial_parameters,
    load_digits_split,
    parameter_count,
    split_dirichlet,
    split_iid,
    train_local,
)
from stakelearn.models.update_io import load_update


@pytest.fixture(scope="module")
def data():
    return load_digits_split(0.2, seed=0)


def test_load_digits_split_holds_out_a_fifth(data):
    train, test = data
    assert (len(train), len(test)) == (1438, 359)
    assert train.x.min() >= 0 and train.x.max() <= 1


def test_split_iid_deals_every_sample_once(data):
    shards = split_iid(data[0].y, 8, np.random.default_rng(0))
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(data[0])))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_split_dirichlet_is_skewed_and_complete(data):
    labels = data[0].y
    shards = split_dirichlet(labels, 8, alpha=0.3, rng=np.random.default_rng(0))
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(labels)))
    assert min(map(len, shards)) >= 10
    top_class_share = [np.bincount(labels[s], minlength=10).max() / len(s) for s in shards]
    assert max(top_class_share) > 0.3  # IID shards hold about 0.1 of each class


def test_split_dirichlet_rejects_bad_alpha(data):
    with pytest.raises(InputError, match="concentration must be > 0"):
        split_dirichlet(data[0].y, 8, alpha=0.0, rng=np.random.default_rng(0))


def test_build_and_flatten_round_trip():
    parameters = np.random.default_rng(0).normal(size=parameter_count(16)).astype(np.float32).astype(np.float64)
    assert np.array_equal(flatten(build(parameters, 16)), parameters)
    with pytest.raises(InputError, match="expected 650 parameters"):
        build(parameters, 0)


def test_train_local_is_deterministic_and_learns(data):
    train, test = data
    start = initial_parameters(0, seed=0)
    first = train_local(start, train, 0, LocalTraining(epochs=2), seed=1)
    assert np.array_equal(first, train_local(start, train, 0, LocalTraining(epochs=2), seed=1))
    assert accuracy(first, test, 0) > accuracy(start, test, 0) + 0.5


def test_export_onnx_parameters_are_the_model(tmp_path):
    parameters = initial_parameters(0, seed=3)
    path = export_onnx(parameters, 0, tmp_path / "client.onnx")
    assert np.allclose(load_update(path), parameters, atol=1e-7)  # float32 in the file
