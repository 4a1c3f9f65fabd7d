"""Finding 7: an aggregator and one colluding client got an honest client slashed: the colluder
signed client 0's commitment as its own and the duplicate rule flagged both copies. Each
committed vector now carries its slot's tag, which the circuit checks: a copied commitment
cannot be proven in another slot, and an update copied value for value is another commitment
that marks nobody."""

import json

from web3.logs import DISCARD

from stakelearn.circuits.krum import krum_round, tagged_inputs
from stakelearn.files import write_json_atomic
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.federation.rules import PenaltyPolicy
from stakelearn.prover import steps
from stakelearn.prover.circuit import input_json, prepare
from stakelearn.prover.commitments import proof_commitments
from stakelearn.prover.round import public_outputs

from ..verifier_contracts.world import make_world
from .conftest import round_commitments, use_round


def test_copied_commitment_cannot_be_proven_in_the_copiers_slot(world, small_circuit, small_updates, tmp_path):
    """The aggregator proves a round whose slot 3 holds client 0's committed vector; client 3
    signed that commitment. The proof exists, but its check_error is not 0: rejected."""
    prepared = prepare(small_circuit)
    inputs = tagged_inputs(small_updates)
    inputs[3] = inputs[0]  # the copy, tag and all
    total = krum_round(inputs[:, :-1], small_circuit.params).total
    write_json_atomic(tmp_path / steps.INPUT, input_json(inputs, total))
    steps.gen_witness(tmp_path / steps.INPUT, prepared.compiled, tmp_path / steps.WITNESS)
    steps.prove(tmp_path / steps.WITNESS, prepared.compiled, prepared.pk, tmp_path / steps.PROOF, prepared.srs.path)
    proof = json.loads((tmp_path / steps.PROOF).read_text())
    assert public_outputs(proof["instances"][0], 5)["check_error"] == (1 * (1 - 4)) ** 2
    commitments = proof_commitments(bytes(proof["proof"]), 6)
    assert commitments[3] == commitments[0] == world.commitments[0]

    task_id = world.start_task()
    tasks = world.protocol.tasks
    args = world.round_args(task_id, 1, commitments=commitments, proof_json=tmp_path / steps.PROOF)
    assert world.revert_name(world.clients[3], tasks, "submitRound", args) == "RoundVerifier__AggregateMismatch"
    assert tasks.functions.record(task_id, world.clients[0].address).call() == [0, 0, 0, 0]


def test_update_copied_value_for_value_frames_nobody(small_circuit, proven_round, small_accuracy, request):
    """Client 3 sends client 0's numbers under its own tag (with the aggregator's help): the
    two commitments differ and, under the default policy, neither client is flagged."""
    duplicated = request.getfixturevalue("duplicated_round")
    world = make_world(Chain.embedded(), prepare(small_circuit), proven_round, small_accuracy, PenaltyPolicy())
    use_round(world, duplicated)
    assert round_commitments(duplicated)[0] != round_commitments(duplicated)[3]
    task_id = world.start_task()
    receipt = world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["selectedMask"] & 0b01001 == 0b01001
    assert event["args"]["flaggedMask"] & 0b01001 == 0
