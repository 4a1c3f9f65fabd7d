"""Finding: the store joined paths read from its SQLite file onto the run folder unchecked, so a
crafted store could make the aggregator or an auditor read /etc/passwd or ../../x. A stored
path must name a location inside the store's folder."""

import pytest

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.node.store import SequencerStore


@pytest.fixture
def store(tmp_path):
    run = tmp_path / "run"
    (run / "updates").mkdir(parents=True)
    (run / "updates" / "client-0.onnx").write_bytes(b"model")
    (tmp_path / "secret").write_text("outside the run folder")
    store = SequencerStore(run / "store.sqlite")
    yield store
    store.close()


def test_a_relative_path_inside_the_folder_resolves(store):
    path = store.resolve("updates/client-0.onnx")
    assert path == store.root / "updates" / "client-0.onnx" and path.read_bytes() == b"model"
    assert store.resolve(store.relative(path)) == path
    assert store.resolve("updates/../updates/client-0.onnx").read_bytes() == b"model"  # still inside


@pytest.mark.parametrize("stored", ["/etc/passwd", "../secret", "updates/../../secret", "..", ""])
def test_a_path_leaving_the_folder_is_refused(store, stored):
    with pytest.raises(StakeLearnError, match="outside the run folder"):
        store.resolve(stored)


def test_a_symlink_pointing_outside_is_refused(store):
    (store.root / "updates" / "client-1.onnx").symlink_to(store.root.parent / "secret")
    with pytest.raises(StakeLearnError, match="outside the run folder"):
        store.resolve("updates/client-1.onnx")


def test_a_symlinked_run_folder_still_works(store, tmp_path):
    """The check compares resolved locations, so a run folder reached through a link is fine."""
    link = tmp_path / "link"
    link.symlink_to(store.root)
    moved = SequencerStore(link / "store.sqlite")
    try:
        assert moved.resolve("updates/client-0.onnx").read_bytes() == b"model"
    finally:
        moved.close()
