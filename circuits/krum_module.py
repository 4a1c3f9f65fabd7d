"""The Multi-Krum round as a torch module, exported to ONNX for ezkl.

Inputs, one ONNX input each so that each gets its own KZG commitment in the proof:
``update_0 .. update_{n-1}`` of shape ``[d]`` (integer fixed-point updates) and
``claimed_sum`` of shape ``[d]`` (the aggregator's claimed sum of the selected updates; the
next global update is that sum divided by ``m``).

Output, one public vector: ``[scores (n), mask (n), sum_error, range_tag]``.
- ``sum_error`` is ``sum((computed_sum - claimed_sum)**2)``. A round is valid only when it is
  0; since every input is range-checked to ``|v| <= value_bound`` and ``d * (2 bound)^2`` is far
  below the field modulus, 0 in the field means the claimed sum equals the computed sum, so the
  commitment to ``claimed_sum`` is the commitment to the aggregate.
- ``range_tag`` is a by-product of the range check: each input element goes through a lookup
  (a sigmoid table at scale 0). ezkl fills whole table columns from the low end of its range,
  so the table holds ``[-value_bound, -value_bound + T)`` with ``T >= 2 value_bound + 1`` and
  ``T < 2^(logrows + 1)``; an element outside has no row in the table and no proof exists. That
  bound is what soundness needs (no value can wrap around the field, so distances are true
  integers); the tighter ``|v| <= max_int`` is checked off circuit before an update is accepted.
  The tag's value means nothing; it is an output only so that the lookup is part of the graph.

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

import torch

from stakelearn.circuits.krum import KrumParams


def krum_selection(distances: torch.Tensor, params: KrumParams, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Krum scores and the Multi-Krum mask from the ``[n, n]`` squared-distance matrix.

    A score is the sum of the ``n - f - 1`` smallest entries of a row (the self-distance 0 is
    one of them); the mask keeps the ``m`` lowest tie-broken keys ``score * n + index``.
    """
    nearest = torch.topk(distances, params.neighbours + 1, dim=1, largest=False).values
    scores = nearest.sum(dim=1)
    key = scores * params.n + index
    threshold = torch.topk(key, params.m, largest=False).values.max()
    return scores, (key <= threshold).float()


class MultiKrumRound(torch.nn.Module):
    """Scores, Multi-Krum mask, the check of the claimed selected sum, and the range check."""

    def __init__(self, params: KrumParams) -> None:
        super().__init__()
        self.params = params
        self.register_buffer("index", torch.arange(params.n, dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        n = self.params.n
        updates, claimed_sum = inputs[:n], inputs[n]
        # The Gram matrix is symmetric: n(n+1)/2 dot products, not n^2.
        dots = {(i, j): torch.einsum("k,k->", updates[i], updates[j]) for i in range(n) for j in range(i, n)}
        gram = torch.stack([torch.stack([dots[min(i, j), max(i, j)] for j in range(n)]) for i in range(n)])
        norms = torch.stack([dots[i, i] for i in range(n)])
        distances = norms.unsqueeze(1) + norms.unsqueeze(0) - 2 * gram
        scores, mask = krum_selection(distances, self.params, self.index)
        total = sum(mask[i] * updates[i] for i in range(n))
        sum_error = ((total - claimed_sum) ** 2).sum().reshape(1)
        range_tag = sum(torch.sigmoid(x).sum() for x in inputs).reshape(1)
        return torch.cat([scores, mask, sum_error, range_tag])


def input_names(n: int) -> list[str]:
    return [f"update_{i}" for i in range(n)] + ["claimed_sum"]


def split_outputs(values: list[int], n: int) -> dict[str, list[int]]:
    """Name the parts of the circuit's output vector."""
    return {
        "scores": values[:n],
        "mask": values[n : 2 * n],
        "sum_error": values[2 * n],
        "range_tag": values[2 * n + 1],
    }


def export_onnx(params: KrumParams, d: int, path: Path) -> Path:
    """Write the round's ONNX graph for ``n`` updates of length ``d`` to ``path``."""
    module = MultiKrumRound(params).eval()
    example = tuple(torch.zeros(d) for _ in range(params.n + 1))
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
