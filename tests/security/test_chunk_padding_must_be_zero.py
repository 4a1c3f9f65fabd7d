"""The padding of a round's last, partial chunk is zero, or `verify` refuses the folder (security
review, finding 10 c). The chunk circuit does not constrain it (one circuit and key serve every
chunk), so an aggregator colluding with a client can prove a round in which that client's last
chunk hides coordinates beyond d: they count in the Krum distances (here they pull the outlier,
client 4, into the selection) and land in the aggregate, whose commitment no honest client
re-deriving the model from its d coordinates reproduces. Every proof of such a folder verifies;
the off-chain check reads the last chunk's committed input (checked against the proof's
commitments) and refuses the non-zero padding. Real proofs: 5 clients, d = 12 in 2 chunks of 8."""

import json

import numpy as np
import pytest

from stakelearn.circuits.chunk import chunk_gram, combine, split_chunks, tag_slices
from stakelearn.circuits.krum import krum_round
from stakelearn.errors import ProofError
from stakelearn.files import write_json_atomic
from stakelearn.prover import chunked_round as folder_layout
from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit, prove_chunk, prove_combine
from stakelearn.prover.chunked_round import CHUNKS, COMBINE, verify_chunked_round
from stakelearn.prover.circuit import prepare
from stakelearn.prover.parallel import chunk_folder
from stakelearn.prover.steps import INPUT
from stakelearn.prover.verifying import ship_verifying_files

N, F, M, C, D, MAX_INT = 5, 1, 3, 8, 12, 128


def updates() -> np.ndarray:
    """Four similar updates and one far away (client 4)."""
    rng = np.random.default_rng(3)
    base = rng.integers(-40, 41, size=D)
    x = base + rng.integers(-6, 7, size=(N, D))
    x[4] = -2 * base
    return np.clip(x, -MAX_INT, MAX_INT)


def prove_folder(x: np.ndarray, padding: np.ndarray, out) -> dict:
    """Prove, as an aggregator would, the round of ``x`` whose last chunk carries ``padding``
    (``[n, C - D % C]``) beyond the d coordinates, into a folder laid out as `prove` writes it."""
    chunk = prepare(ChunkCircuit(N, F, M, C, MAX_INT, num_inner_cols=4))
    combine_circuit = prepare(CombineCircuit(N, F, M, D, MAX_INT, num_inner_cols=4))
    slices = split_chunks(x, C)
    slices[-1][:, D % C :] = padding
    gram = sum(chunk_gram(s) for s in slices)
    mask = combine(gram, combine_circuit.circuit.params).mask.astype(np.int64)
    outcomes = []
    for k, part in enumerate(slices):
        claimed = (mask[:, None] * part).sum(axis=0)
        outcomes.append(prove_chunk(chunk, tag_slices(part), claimed, mask, chunk_folder(out / CHUNKS, k)))
    prove_combine(combine_circuit, gram, out / COMBINE)
    verifying = {}
    for name, prepared in ((folder_layout.CHUNK_CIRCUIT, chunk), (folder_layout.COMBINE_CIRCUIT, combine_circuit)):
        (out / name).mkdir()
        verifying[name] = ship_verifying_files(prepared, out / name)
    write_json_atomic(out / folder_layout.MANIFEST, folder_layout._manifest(chunk, combine_circuit, D, verifying, []))
    write_json_atomic(out / folder_layout.COMMITMENTS, folder_layout._commitments(outcomes, N))
    outcome = verify_chunked_round(out, check_public=False) if not padding.any() else None
    return {"gram": gram, "mask": mask, "outcome": outcome}


def test_an_honest_partial_chunk_verifies(tmp_path):
    x = updates()
    proven = prove_folder(x, np.zeros((N, C - D % C), dtype=np.int64), tmp_path / "round")
    assert proven["outcome"].mask == krum_round(x, CombineCircuit(N, F, M, D, MAX_INT).params).mask.astype(int).tolist()


@pytest.mark.parametrize("hidden", ["moves the selection", "lands in the aggregate"])
def test_non_zero_padding_in_the_last_chunk_is_refused(tmp_path, hidden):
    x = updates()
    honest = krum_round(x, CombineCircuit(N, F, M, D, MAX_INT).params).mask.astype(np.int64).tolist()
    assert honest == [0, 1, 1, 1, 0]
    padding = np.zeros((N, C - D % C), dtype=np.int64)
    if hidden == "moves the selection":
        padding[1] = 60  # client 1's hidden coordinates push it out, client 0 in
    else:
        padding[2, 0] = 1  # one hidden quantum in client 2's slice: still selected
    proven = prove_folder(x, padding, tmp_path / "round")
    rows = json.loads((tmp_path / "round" / CHUNKS / "chunk-00001" / INPUT).read_text())["input_data"]
    if hidden == "moves the selection":
        assert proven["mask"].tolist() == [1, 0, 1, 1, 0] and proven["gram"][1, 1] > int(x[1] @ x[1])
    else:
        assert proven["mask"].tolist() == honest and rows[N][D % C] == 1  # the claimed sum's padding
    with pytest.raises(ProofError, match="non-zero values in the last chunk's padding"):
        verify_chunked_round(tmp_path / "round", check_public=False)
