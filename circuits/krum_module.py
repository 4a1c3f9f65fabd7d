"""The Multi-Krum round as a torch module, exported to ONNX for ezkl.

Inputs, one ONNX input each so that each gets its own KZG commitment in the proof:
``update_0 .. update_{n-1}`` of shape ``[d + 1]`` (an integer fixed-point update followed by its
slot tag, :func:`stakelearn.circuits.krum.tagged_inputs`) and ``claimed_sum`` of shape ``[d]``
(the aggregator's claimed sum of the selected updates; the next global update is that sum
divided by ``m``).

Output, one public vector: ``[scores (n), mask (n), absent (n), check_error, range_tag]``.
- ``absent`` is 1 for a slot whose tag is 0: the contract requires it to be exactly the slots the
  round declares absent, so no signed slot can hide as an absent one (and more than the
  tolerated number of slots cannot be absent).
- ``check_error`` is ``sum((computed_sum - claimed_sum)**2) + sum_i (tag_i (tag_i - i - 1))**2``.
  A round is valid only when it is 0: every term is a square of a range-bounded integer, far
  below the field modulus, so 0 means the claimed sum equals the computed sum (the commitment
  to ``claimed_sum`` is the commitment to the aggregate) and every tag is ``i + 1`` (present) or
  0 (absent). A tag is inside the committed vector, so a client's signed commitment belongs to
  its slot alone: copying another client's commitment gives a vector no proof accepts.
- An absent slot (tag 0, the zero vector) is ``absent_distance`` further from every slot, so it
  never enters a present client's score nor the selection (see ``krum.absent_distance``).
- ``range_tag`` is a by-product of the range check: input elements go through a lookup (a
  sigmoid table at scale 0) whose table holds ``[-max_int, -max_int + T)`` with
  ``T >= 2 max_int + 1`` and ``T < 2^(logrows + 1)`` (ezkl fills whole table columns, so only
  the lower end is tight). Each update element ``v`` is looked up as ``v`` and as ``-v``, which
  both lie in the table exactly when ``|v| <= max_int``: the task's clip is proven, not only
  checked off circuit. The claimed sum is looked up shifted by ``(m - 1) max_int``, which bounds
  it to ``[-m max_int, ...)`` and from above by the table: it equals a sum of ``m`` clipped
  updates when ``check_error`` is 0, and these loose bounds are what keep ``check_error`` from
  wrapping around the field. The tag's value means nothing; it is an output only so that the
  lookups are part of the graph.

The computation equals :func:`stakelearn.circuits.krum.krum_round` exactly on integer inputs.
Why this formulation (rows per update element set the proving time):
- the Gram matrix from its ``n(n+1)/2`` distinct dot products (it is symmetric), each packed
  ``num_inner_cols`` multiply-adds per row; ezkl's Freivalds path for einsum is not used (its
  result is not copy-constrained to later cells in ezkl 23, see ``RoundCircuit.run_args``);
- the self-distance is 0, the smallest entry of its row, so a score is the sum of the
  ``n - f - 1`` smallest entries of its row with no masking of the diagonal;
- selection is a threshold on a tie-broken key (``score * n + index``), not TopK indices plus
  Gather; the aggregate is the mask-weighted sum of the inputs, with no stacked copy of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from stakelearn.circuits.krum import KrumParams, slot_tag


def absent_aware_distances(
    gram: torch.Tensor, norms: torch.Tensor, absent: torch.Tensor, absent_distance: float
) -> torch.Tensor:
    """Squared distances from the Gram matrix, ``G_ii + G_jj - 2 G_ij``, with ``absent_distance``
    added per absent end of a pair (the torch twin of ``krum.gram_distances`` plus absence)."""
    return (
        norms.unsqueeze(1)
        + norms.unsqueeze(0)
        - 2 * gram
        + absent_distance * (absent.unsqueeze(1) + absent.unsqueeze(0))
    )


def krum_selection(
    distances: torch.Tensor, params: KrumParams, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Krum scores and the Multi-Krum mask from the ``[n, n]`` squared-distance matrix.

    A score is the sum of the ``n - f - 1`` smallest entries of a row (the self-distance 0 is
    one of them); the mask keeps the ``m`` lowest tie-broken keys ``score * n + index``.
    """
    nearest = torch.topk(distances, params.neighbours + 1, dim=1, largest=False).values
    scores = nearest.sum(dim=1)
    key = scores * params.n + index
    threshold = torch.topk(key, params.m, largest=False).values.max()
    return scores, (key <= threshold).float()


class RoundInputs(NamedTuple):
    """A round's inputs, split, and what both rules compute from them first."""

    tagged: tuple[torch.Tensor, ...]  # the n inputs as committed: update then slot tag
    updates: list[torch.Tensor]
    tags: list[torch.Tensor]
    claimed_sum: torch.Tensor
    gram: torch.Tensor  # [n, n]
    norms: torch.Tensor  # [n], its diagonal
    absent: torch.Tensor  # [n], 1 iff the slot's tag is 0 (it is 0 or i + 1)


def round_inputs(inputs: tuple[torch.Tensor, ...], n: int) -> RoundInputs:
    """Split the round's inputs; the updates' Gram matrix from its n(n+1)/2 distinct dot
    products (it is symmetric), their norms, and the absent flags."""
    tagged, claimed_sum = inputs[:n], inputs[n]
    d = claimed_sum.shape[0]
    updates, tags = [t[:d] for t in tagged], [t[d:] for t in tagged]
    dots = {(i, j): torch.einsum("k,k->", updates[i], updates[j]) for i in range(n) for j in range(i, n)}
    gram = torch.stack([torch.stack([dots[min(i, j), max(i, j)] for j in range(n)]) for i in range(n)])
    norms = torch.stack([dots[i, i] for i in range(n)])
    absent = torch.cat([torch.relu(1 - tag) for tag in tags])
    return RoundInputs(tagged, updates, tags, claimed_sum, gram, norms, absent)


def tag_error(tags: list[torch.Tensor]) -> torch.Tensor:
    """0 exactly when every slot's tag is i + 1 or 0 (a sum of squares of small integers)."""
    return sum(((tag * (tag - slot_tag(i))) ** 2).sum() for i, tag in enumerate(tags))


def clip_lookups(tagged: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Every committed value looked up as v and as -v: both lie in the table exactly when |v| <= max_int."""
    return sum(torch.sigmoid(x).sum() + torch.sigmoid(-x).sum() for x in tagged)


class MultiKrumRound(torch.nn.Module):
    """Scores, Multi-Krum mask, the check of the claimed selected sum and of the slot tags, and
    the range check."""

    def __init__(self, params: KrumParams, absent_distance: int, max_int: int) -> None:
        super().__init__()
        self.params = params
        self.absent_distance = float(absent_distance)  # a power of two: exact in float32
        self.sum_shift = float((params.m - 1) * max_int)
        self.register_buffer("index", torch.arange(params.n, dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = round_inputs(inputs, self.params.n)
        distances = absent_aware_distances(x.gram, x.norms, x.absent, self.absent_distance)
        scores, mask = krum_selection(distances, self.params, self.index)
        total = sum(mask[i] * update for i, update in enumerate(x.updates))
        check_error = (((total - x.claimed_sum) ** 2).sum() + tag_error(x.tags)).reshape(1)
        range_tag = (clip_lookups(x.tagged) + torch.sigmoid(x.claimed_sum + self.sum_shift).sum()).reshape(1)
        return torch.cat([scores, mask, x.absent, check_error, range_tag])


def input_names(n: int) -> list[str]:
    return [f"update_{i}" for i in range(n)] + ["claimed_sum"]


def split_outputs(values: list[int], n: int) -> dict[str, list[int]]:
    """Name the parts of the circuit's output vector."""
    return {
        "scores": values[:n],
        "mask": values[n : 2 * n],
        "absent": values[2 * n : 3 * n],
        "check_error": values[3 * n],
        "range_tag": values[3 * n + 1],
    }


def export_onnx(
    params: KrumParams,
    d: int,
    absent_distance: int,
    max_int: int,
    path: Path,
    round_module: type[torch.nn.Module] = MultiKrumRound,
) -> Path:
    """Write the round's ONNX graph for ``n`` tagged updates of length ``d + 1`` to ``path``:
    ``round_module`` is this one, or another with its inputs and outputs (``nnm_module``'s)."""
    module = round_module(params, absent_distance, max_int).eval()
    example = (*(torch.zeros(d + 1) for _ in range(params.n)), torch.zeros(d))
    torch.onnx.export(
        module,
        example,
        str(path),
        input_names=input_names(params.n),
        output_names=["round"],
        opset_version=17,
        dynamo=False,
    )
    return path
