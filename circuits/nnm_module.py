"""The NNM + Multi-Krum round as a torch module, exported to ONNX for ezkl.

Inputs and the output vector are the Multi-Krum round's (``krum_module``): ``update_0 ..
update_{n-1}`` (tagged updates) and ``claimed_sum``, and ``[scores (n), mask (n), absent (n),
check_error, range_tag]``, so the same RoundVerifier contract checks both rules (it pins one
circuit's VKA; the task records the rule). What differs:
- ``scores`` are the raw Krum scores of the committed updates (the chain flags on them);
- ``mask`` is Multi-Krum's selection among the mixed updates ``Y = W X``: row i of the 0/1
  matrix ``W`` marks the ``n - f`` smallest tie-broken keys ``distance * n + j`` of row i of the
  (absence-raised) distance matrix, and the mixed updates' doubled distances come from
  ``W D W^T`` (``krum.mixed_distances``): n^3 products, nothing per coordinate. (``W G W^T``
  would be the same numbers, but ezkl lays out products with the Gram matrix, stacked from
  dot products, in about ten times the rows: measured 5,600 against 512 at n = 16);
- the claimed sum is checked against ``sum_j c_j x_j`` with ``c = mask W``, whose weights add up
  to ``m (n - f)`` (``KrumParams.weight``). What is range-checked is the difference
  ``computed - claimed``, in the clip's own table: it is all ``check_error`` squares, so bounding
  it is what keeps that sum of squares from wrapping around the field, and the table need not
  span the aggregate's ``m (n - f)`` times wider range (a table over several columns multiplied
  the proving time by 3.6 in the demo's task).
An absent slot is ``absent_distance`` further from every slot, so no present update mixes it in;
among mixed updates it is ``mixed_absent_distance`` further, so it is never selected.

The computation equals :func:`stakelearn.circuits.krum.krum_round` with ``rule="nnm-multikrum"``
exactly on integer inputs.
"""

from __future__ import annotations

import torch

from stakelearn.circuits.krum import KrumParams, mixed_absent_distance
from stakelearn.circuits.krum_module import (
    absent_aware_distances,
    clip_lookups,
    krum_selection,
    round_inputs,
    tag_error,
)


class NnmMultiKrumRound(torch.nn.Module):
    """Raw scores, NNM mixing, Multi-Krum on the mixed updates, the check of the claimed weighted
    sum and of the slot tags, and the range check."""

    def __init__(self, params: KrumParams, absent_distance: int, max_int: int) -> None:
        super().__init__()
        self.params = params
        self.absent_distance = float(absent_distance)  # powers of two: exact in float32
        self.mixed_absent_distance = float(mixed_absent_distance(absent_distance, params))
        self.register_buffer("index", torch.arange(params.n, dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        params, n = self.params, self.params.n
        x = round_inputs(inputs, n)
        plain = absent_aware_distances(x.gram, x.norms, x.absent, 0.0)
        distances = plain + self.absent_distance * (x.absent.unsqueeze(1) + x.absent.unsqueeze(0))
        scores = torch.topk(distances, params.neighbours + 1, dim=1, largest=False).values.sum(dim=1)

        key = distances * n + self.index.unsqueeze(0)
        kth = torch.topk(key, params.mixing, dim=1, largest=False).values.max(dim=1, keepdim=True).values
        mixing = (key <= kth).to(plain.dtype)
        rows = mixing @ plain
        spread = rows @ mixing.T  # P = W D W^T
        own = (rows * mixing).sum(dim=1)  # its diagonal
        mixed = (
            2 * spread
            - own.unsqueeze(1)
            - own.unsqueeze(0)
            + self.mixed_absent_distance * (x.absent.unsqueeze(1) + x.absent.unsqueeze(0))
        )
        _, mask = krum_selection(mixed, params, self.index)
        weights = mask.to(plain.dtype) @ mixing

        error = sum(weights[i] * update for i, update in enumerate(x.updates)) - x.claimed_sum
        check_error = ((error**2).sum() + tag_error(x.tags)).reshape(1)
        range_tag = (clip_lookups(x.tagged) + torch.sigmoid(error).sum()).reshape(1)
        return torch.cat([scores, mask, x.absent, check_error, range_tag])
