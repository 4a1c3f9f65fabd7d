"""Helpers for the attacks of the security review, replayed on the embedded chain with real proofs."""

from stakelearn.prover import steps
from stakelearn.prover.round import round_commitments


def use_round(world, folder) -> None:
    """Make ``folder``'s proof and commitments the ones the world submits."""
    world.commitments = round_commitments(folder)
    world.proof_json = folder / steps.PROOF


def absent_signatures(world, task_id, epoch, absent) -> list[bytes]:
    """The clients' signatures, with an all-zero one in each absent slot."""
    signed = world.signatures(task_id, epoch)
    return [bytes(65) if gone else signature for signature, gone in zip(signed, absent)]
