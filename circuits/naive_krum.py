"""The benchmark's baseline: the same Multi-Krum round written the obvious way.

Distances come from broadcast differences (``n^2 * d`` subtractions and squares) and the
graph is compiled with ezkl's defaults (public inputs, calibrated scales). It is not used to
prove anything; ``stakelearn bench`` measures it beside :mod:`krum_module` so the table shows
what the formulation and layout choices buy.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stakelearn.circuits.krum import KrumParams
from stakelearn.circuits.krum_module import krum_selection


class NaiveMultiKrumRound(torch.nn.Module):
    def __init__(self, params: KrumParams) -> None:
        super().__init__()
        self.params = params
        self.register_buffer("index", torch.arange(params.n, dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        updates = torch.stack(inputs[: self.params.n])
        distances = ((updates.unsqueeze(1) - updates.unsqueeze(0)) ** 2).sum(dim=2)
        scores, mask = krum_selection(distances, self.params, self.index)
        total = (mask.unsqueeze(1) * updates).sum(dim=0)
        return torch.cat([scores, mask, total])


def export_naive_onnx(params: KrumParams, d: int, path: Path) -> Path:
    example = tuple(torch.zeros(d) for _ in range(params.n))
    torch.onnx.export(NaiveMultiKrumRound(params).eval(), example, str(path), opset_version=17, dynamo=False)
    return path
