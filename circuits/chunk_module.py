"""The chunk and combine circuits of a chunked round as torch modules, exported to ONNX for ezkl.

Chunk circuit (one per chunk of ``C`` coordinates; see :mod:`stakelearn.circuits.chunk`).
Inputs, one ONNX input each so that each gets its own KZG commitment in the proof:
``slice_0 .. slice_{n-1}`` of shape ``[C + 1]`` (a client's chunk followed by its slot tag,
:func:`stakelearn.circuits.chunk.tag_slices`), ``claimed_sum`` of shape ``[C]`` (the claimed
sum's chunk) and ``mask`` of shape ``[n]`` (the round's selection mask).
Output, one public vector: ``[gram (n(n+1)/2), mask (n), absent (n), check_error, range_tag]``.
- ``gram`` is the chunk's partial Gram matrix, upper triangle row by row;
- ``mask`` echoes the mask input: ezkl sets one visibility for all inputs, and the client
  slices must stay committed, so the mask is committed too and made public by copying it into
  the output; the chain compares it with the combine proof's mask;
- ``absent``, ``check_error`` and ``range_tag`` as in :mod:`stakelearn.circuits.krum_module`;
  ``check_error`` also holds ``sum_i (mask_i (mask_i - 1))^2 + (sum_i mask_i - m)^2``, so a
  valid proof's mask is ``m`` bits. The lookups bound each slice value (and tag) to
  ``|v| <= max_int`` and the claimed sum to ``[-m max_int, ...)``, as in the round circuit.

Combine circuit (one per round, independent of ``d``): public inputs ``gram`` (the total Gram
matrix's upper triangle, the sum of the chunk proofs' outputs) and ``absent`` (the round's
absent slots); public output ``[scores (n), mask (n)]``, computed exactly as the round circuit
computes them (:func:`stakelearn.circuits.krum_module.krum_selection`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from stakelearn.circuits.chunk import triangle_pairs, triangle_size
from stakelearn.circuits.krum import KrumParams, slot_tag
from stakelearn.circuits.krum_module import absent_aware_distances, krum_selection


class ChunkRound(torch.nn.Module):
    """A chunk's partial Gram matrix, the check of the claimed sum slice under the mask and of
    the slot tags, and the range check."""

    def __init__(self, n: int, m: int, max_int: int) -> None:
        super().__init__()
        self.n, self.m = n, m
        self.sum_shift = float((m - 1) * max_int)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        n = self.n
        tagged, claimed_sum, mask = inputs[:n], inputs[n], inputs[n + 1]
        c = claimed_sum.shape[0]
        slices, tags = [t[:c] for t in tagged], [t[c:] for t in tagged]
        gram = torch.stack([torch.einsum("k,k->", slices[i], slices[j]) for i, j in triangle_pairs(n)])
        absent = torch.cat([torch.relu(1 - tag) for tag in tags])  # 1 iff the tag is 0 (it is 0 or i + 1)
        total = sum(mask[i] * slices[i] for i in range(n))
        tag_error = sum(((tag * (tag - slot_tag(i))) ** 2).sum() for i, tag in enumerate(tags))
        mask_error = ((mask * (mask - 1)) ** 2).sum() + (mask.sum() - self.m) ** 2
        check_error = (((total - claimed_sum) ** 2).sum() + tag_error + mask_error).reshape(1)
        range_tag = (
            sum(torch.sigmoid(x).sum() + torch.sigmoid(-x).sum() for x in tagged)
            + torch.sigmoid(claimed_sum + self.sum_shift).sum()
        ).reshape(1)
        return torch.cat([gram, mask, absent, check_error, range_tag])


class CombineRound(torch.nn.Module):
    """Krum scores and the Multi-Krum mask from the total Gram matrix."""

    def __init__(self, params: KrumParams, absent_distance: int) -> None:
        super().__init__()
        self.params = params
        self.absent_distance = float(absent_distance)  # a power of two: exact in float32
        n = params.n
        position = {pair: k for k, pair in enumerate(triangle_pairs(n))}
        full = [position[min(i, j), max(i, j)] for i in range(n) for j in range(n)]
        self.register_buffer("full", torch.tensor(full, dtype=torch.long))
        self.register_buffer("diagonal", torch.tensor([position[i, i] for i in range(n)], dtype=torch.long))
        self.register_buffer("index", torch.arange(n, dtype=torch.float32))

    def forward(self, gram_entries: torch.Tensor, absent: torch.Tensor) -> torch.Tensor:
        n = self.params.n
        gram = gram_entries[self.full].reshape(n, n)
        norms = gram_entries[self.diagonal]
        distances = absent_aware_distances(gram, norms, absent, self.absent_distance)
        scores, mask = krum_selection(distances, self.params, self.index)
        return torch.cat([scores, mask])


def chunk_input_names(n: int) -> list[str]:
    return [f"slice_{i}" for i in range(n)] + ["claimed_sum", "mask"]


COMBINE_INPUT_NAMES = ["gram", "absent"]


def split_chunk_outputs(values: list[int], n: int) -> dict:
    """Name the parts of the chunk circuit's output vector."""
    t = triangle_size(n)
    return {
        "gram": values[:t],
        "mask": values[t : t + n],
        "absent": values[t + n : t + 2 * n],
        "check_error": values[t + 2 * n],
        "range_tag": values[t + 2 * n + 1],
    }


def split_combine_outputs(values: list[int], n: int) -> dict:
    """Name the parts of the combine circuit's output vector."""
    return {"scores": values[:n], "mask": values[n : 2 * n]}


def _export(module: torch.nn.Module, example: tuple, names: list[str], output: str, path: Path) -> Path:
    torch.onnx.export(
        module.eval(), example, str(path), input_names=names, output_names=[output], opset_version=17, dynamo=False
    )
    return path


def export_chunk_onnx(n: int, m: int, chunk: int, max_int: int, path: Path) -> Path:
    """Write the chunk circuit's ONNX graph for ``n`` tagged slices of length ``chunk + 1``."""
    example = (*(torch.zeros(chunk + 1) for _ in range(n)), torch.zeros(chunk), torch.zeros(n))
    return _export(ChunkRound(n, m, max_int), example, chunk_input_names(n), "chunk", path)


def export_combine_onnx(params: KrumParams, absent_distance: int, path: Path) -> Path:
    """Write the combine circuit's ONNX graph for ``n`` clients."""
    example = (torch.zeros(triangle_size(params.n)), torch.zeros(params.n))
    return _export(CombineRound(params, absent_distance), example, COMBINE_INPUT_NAMES, "combine", path)
