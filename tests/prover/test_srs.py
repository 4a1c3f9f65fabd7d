import shutil

import pytest

from stakelearn.errors import InputError
from stakelearn.prover.circuit import prepare
from stakelearn.prover.round import verify_round
from stakelearn.prover.srs import INSECURE_LABEL, ceremony_srs, srs_logrows


def test_local_srs_is_labelled_insecure(small_circuit):
    prepared = prepare(small_circuit)
    assert prepared.srs.insecure and prepared.srs.label == INSECURE_LABEL and "INSECURE" in INSECURE_LABEL
    assert srs_logrows(prepared.srs.path) == prepared.logrows


def test_ceremony_srs_with_wrong_k_is_refused(small_circuit, tmp_path):
    prepared = prepare(small_circuit)
    with pytest.raises(InputError, match=f"needs k={prepared.logrows + 1}"):
        ceremony_srs(prepared.srs.path, prepared.logrows + 1)
    with pytest.raises(InputError, match="does not exist"):
        ceremony_srs(tmp_path / "missing.srs", prepared.logrows)


def test_round_verifies_with_the_same_srs_given_as_a_file(proven_round, small_circuit, tmp_path):
    given = tmp_path / "ceremony.srs"
    shutil.copy(prepare(small_circuit).srs.path, given)
    assert verify_round(proven_round, ceremony_srs=given).check_error == 0
