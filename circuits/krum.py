"""Krum and Multi-Krum on integer (fixed-point) updates: the numpy reference.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine
Tolerant Gradient Descent", NeurIPS 2017. Krum scores each of ``n`` updates by the sum of its
squared distances to its ``n - f - 2`` nearest other updates; Multi-Krum keeps the ``m``
lowest-scoring updates and averages them.

Everything here is exact integer arithmetic so that the circuit (ezkl, input scale 0) computes
the same numbers bit for bit. Two choices make that possible:
- ties between equal scores are broken by the lower client index, so exactly ``m`` clients are
  selected;
- the proven aggregate is the *sum* of the selected updates; the next global update is that
  sum divided by the public ``m`` (:func:`aggregate`), so no rounding happens in the circuit.

Absent clients (who did not commit in time) keep their slot: their distance to every client,
themselves included, is raised by ``absent_distance`` (a power of two above any real Krum
score), so present clients score among present clients only and no absent slot is selected,
as long as at most ``f`` are absent.

A task aggregates by one of two rules (:data:`RULES`), recorded on chain when it is created:
- ``multikrum``: the above, on the committed updates;
- ``nnm-multikrum``: nearest-neighbour mixing first (Allouah et al., "Fixing by Mixing",
  AISTATS 2023). Each update is replaced by the sum of its ``n - f`` nearest updates (itself
  included, ties to the lower index): ``Y = W X`` with ``W`` a 0/1 matrix, so the mixed Gram
  matrix is ``W G W^T`` and costs nothing per coordinate. Multi-Krum then selects ``m`` mixed
  updates by their distances doubled (:func:`mixed_distances`), and the proven aggregate is
  ``sum_j c_j x_j`` with the integer weights ``c = mask^T W``: ``m (n - f)`` times the mean of
  the selected mixed updates (sums, not means, keep every number an integer). The raw Krum
  scores, of the committed updates, are what the chain flags on: mixing pulls an outlier
  towards the honest, by design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stakelearn.errors import InputError

MULTIKRUM = "multikrum"
NNM_MULTIKRUM = "nnm-multikrum"
RULES = (MULTIKRUM, NNM_MULTIKRUM)  # the index is the rule's number on chain


@dataclass(frozen=True)
class KrumParams:
    """Shape of one round: ``n`` clients, ``f`` tolerated Byzantine, ``m`` selected, and the rule."""

    n: int
    f: int
    m: int
    rule: str = MULTIKRUM

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise InputError(f"unknown aggregation rule '{self.rule}'; choose one of: {', '.join(RULES)}")
        if self.f < 0:
            raise InputError(f"byzantine count f must be >= 0, got {self.f}")
        if self.n <= 2 * self.f + 2:
            raise InputError(
                f"Krum needs n > 2f + 2 clients: n={self.n}, f={self.f} needs at least "
                f"{2 * self.f + 3} clients (or lower --byzantine)"
            )
        if not 1 <= self.m <= self.n - self.f:
            raise InputError(f"selection m must be in 1..n-f = 1..{self.n - self.f}, got {self.m}")

    @property
    def allowed_absent(self) -> int:
        """How many absent clients a round may leave out: ``min(f, n - m - f, n - 2f - 3)``, so
        that at least m + f clients are present (the m selected come from more than f others) and
        at least 2f + 3 (Krum's guarantee, more than 2f + 2: the reference score a flag is read
        against is then never a colluder's pick among too few honest scores); no absent slot
        enters a present client's score. MPSRollup.allowedAbsent is the same."""
        return min(self.f, self.n - self.m - self.f, self.n - 2 * self.f - 3)

    @property
    def neighbours(self) -> int:
        """How many nearest other updates enter a Krum score: ``n - f - 2``."""
        return self.n - self.f - 2

    @property
    def mixes(self) -> bool:
        return self.rule == NNM_MULTIKRUM

    @property
    def rule_id(self) -> int:
        """The rule's number on chain (TaskParams.aggregation, RoundVerifier.aggregation)."""
        return RULES.index(self.rule)

    @property
    def mixing(self) -> int:
        """How many nearest updates (itself included) NNM sums into each: ``n - f``."""
        return self.n - self.f

    @property
    def weight(self) -> int:
        """What the proven aggregate is in units of the mean: ``m``, or ``m (n - f)`` with mixing."""
        return self.m * self.mixing if self.mixes else self.m


def pairwise_sq_distances(updates: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of an ``[n, d]`` integer matrix."""
    x = np.asarray(updates, dtype=np.int64)
    return gram_distances(x @ x.T)


def gram_distances(gram: np.ndarray) -> np.ndarray:
    """Squared distances from the Gram matrix: ``||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij``."""
    gram = np.asarray(gram, dtype=np.int64)
    norms = np.diag(gram)
    return norms[:, None] + norms[None, :] - 2 * gram


def krum_scores(updates: np.ndarray, f: int, absent: np.ndarray | None = None, absent_distance: int = 0) -> np.ndarray:
    """Krum score of every row: sum of squared distances to its ``n - f - 2`` nearest others.

    The distance of a row to itself is 0, the smallest possible, so summing the ``n - f - 1``
    smallest entries of each row of the distance matrix (self included) is the same sum. Rows
    marked ``absent`` are ``absent_distance`` further from every row (see the module docstring).
    """
    return distance_scores(pairwise_sq_distances(updates), f, absent, absent_distance)


def distance_scores(
    distances: np.ndarray, f: int, absent: np.ndarray | None = None, absent_distance: int = 0
) -> np.ndarray:
    """Krum scores from the ``[n, n]`` squared-distance matrix (see :func:`krum_scores`)."""
    distances = with_absence(distances, absent, absent_distance)
    params = KrumParams(n=distances.shape[0], f=f, m=1)
    return np.sort(distances, axis=1)[:, : params.neighbours + 1].sum(axis=1)


def multikrum_select(scores: np.ndarray, m: int) -> np.ndarray:
    """Boolean mask of the ``m`` lowest scores; equal scores go to the lower index."""
    scores = np.asarray(scores, dtype=np.int64)
    if not 1 <= m <= scores.size:
        raise InputError(f"selection m must be in 1..{scores.size}, got {m}")
    order = np.lexsort((np.arange(scores.size), scores))
    mask = np.zeros(scores.size, dtype=bool)
    mask[order[:m]] = True
    return mask


def nearest_neighbours(distances: np.ndarray, k: int) -> np.ndarray:
    """NNM's mixing matrix: row i is 1 at the ``k`` smallest entries of row i of the ``[n, n]``
    distance matrix (its own 0 among them), equal distances to the lower index."""
    distances = np.asarray(distances, dtype=np.int64)
    mixing = np.zeros(distances.shape, dtype=np.int64)
    for i, row in enumerate(distances):
        mixing[i, multikrum_select(row, k)] = 1
    return mixing


def with_absence(distances: np.ndarray, absent: np.ndarray | None, absent_distance: int) -> np.ndarray:
    """``distances`` with ``absent_distance`` added per absent end of each pair."""
    if absent is None:
        return np.asarray(distances, dtype=np.int64)
    z = np.asarray(absent, dtype=np.int64)
    return distances + absent_distance * (z[:, None] + z[None, :])


def selected_sum(updates: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sum of the selected rows: the value the circuit commits to as the aggregate."""
    return np.asarray(updates, dtype=np.int64)[np.asarray(mask, dtype=bool)].sum(axis=0)


def aggregate(updates: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the selected updates (the next global update, in fixed-point units)."""
    return selected_sum(updates, mask) / np.count_nonzero(mask)


@dataclass(frozen=True)
class KrumRound:
    """Everything a round computes, as the circuit exposes it: the raw Krum scores (flags are
    read from them), the selection mask and the proven aggregate ``sum_j weights_j x_j``."""

    scores: np.ndarray
    mask: np.ndarray
    total: np.ndarray
    weights: np.ndarray  # per committed update: the mask itself, or mask^T W with mixing

    @property
    def selected(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.mask)]


def krum_round(
    updates: np.ndarray, params: KrumParams, absent: np.ndarray | None = None, absent_distance: int = 0
) -> KrumRound:
    """Raw Krum scores, selection mask and aggregate of an ``[n, d]`` integer update matrix by
    ``params.rule``, with the ``absent`` slots (a boolean mask, at most ``f``) never selected
    nor mixed into a present one."""
    x = np.asarray(updates, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != params.n:
        raise InputError(f"expected {params.n} updates as an [n, d] matrix, got shape {x.shape}")
    if absent is not None and np.count_nonzero(absent) > params.allowed_absent:
        raise InputError(
            f"{np.count_nonzero(absent)} clients are absent; this round tolerates at most "
            f"min(f, n - m - f, n - 2f - 3) = {params.allowed_absent}"
        )
    distances = pairwise_sq_distances(x)
    raised = with_absence(distances, absent, absent_distance)  # what both scores and mixing read
    scores = distance_scores(raised, params.f)
    if not params.mixes:
        mask = multikrum_select(scores, params.m)
        return KrumRound(scores=scores, mask=mask, total=selected_sum(x, mask), weights=mask.astype(np.int64))
    mixing = nearest_neighbours(raised, params.mixing)
    mixed = mixed_distances(distances, mixing)
    mixed_scores = distance_scores(mixed, params.f, absent, mixed_absent_distance(absent_distance, params))
    mask = multikrum_select(mixed_scores, params.m)
    weights = mask.astype(np.int64) @ mixing
    return KrumRound(scores=scores, mask=mask, total=weights @ x, weights=weights)


def mixed_distances(distances: np.ndarray, mixing: np.ndarray) -> np.ndarray:
    """Twice the squared distances between the mixed updates ``Y = W X``, from the updates'
    squared distances ``D`` (no absence offsets): rows of ``W`` add up to the same ``n - f``, so
    ``v = W_a - W_b`` adds up to 0 and ``|Y_a - Y_b|^2 = v^T G v = -v^T D v / 2``; with
    ``P = W D W^T`` that is ``P_ab - (P_aa + P_bb) / 2``. Doubled, it stays an integer. (The
    circuit takes this route because products with the Gram matrix cost it several times the
    rows of products with ``D``; the doubling changes no ranking.)"""
    spread = mixing @ np.asarray(distances, dtype=np.int64) @ mixing.T
    own = np.diag(spread)
    return 2 * spread - own[:, None] - own[None, :]


def mixed_absent_distance(absent_distance: int, params: KrumParams) -> int:
    """The absent slots' offset among mixed updates: doubled distances of sums of ``n - f``
    updates are up to ``2 (n - f)^2`` times the updates' (a power of two above)."""
    return absent_distance << (2 * params.mixing**2).bit_length() if params.mixes else absent_distance


def value_bound(params: KrumParams, max_int: int) -> int:
    """The largest |value| of the claimed aggregate of updates within ``max_int`` (weights adding
    up to ``params.weight``): the bound the accuracy circuit takes for its model."""
    return params.weight * max_int


def absent_distance(params: KrumParams, d: int, max_int: int) -> int:
    """The distance added to and from an absent slot: the smallest power of two (exact in the
    circuit's float32 ONNX constants) above ``n - f - 1`` times the largest distance between
    two updates within ``max_int``, hence above any present client's score."""
    largest_distance = d * (2 * max_int) ** 2
    return 1 << ((params.neighbours + 1) * largest_distance).bit_length()


def max_selection_key(params: KrumParams, d: int, max_int: int) -> int:
    """Upper bound of the tie-broken key ``score * n + index`` for updates within ``max_int``
    (of the mixed updates' scores with mixing, which bound every other compared value)."""
    scale = 2 * params.mixing**2 if params.mixes else 1
    far = mixed_absent_distance(absent_distance(params, d, max_int), params)
    largest_entry = scale * d * (2 * max_int) ** 2 + 2 * far
    return params.n * (params.neighbours + 1) * largest_entry + params.n


def slot_tag(slot: int) -> int:
    """The value a client appends to its update in slot ``slot``: the circuit checks it, so no
    client can sign another slot's vector (a copied commitment cannot be proven)."""
    return slot + 1


def tag_update(update: np.ndarray, slot: int) -> np.ndarray:
    """The vector client ``slot`` commits to: its quantized update followed by its slot tag."""
    return np.append(np.asarray(update, dtype=np.int64), slot_tag(slot))


def tagged_inputs(updates: np.ndarray, absent: np.ndarray | None = None) -> np.ndarray:
    """The round circuit's ``[n, d + 1]`` update inputs: each update with its slot tag, and the
    all-zero vector (tag 0) in an absent slot."""
    rows = np.stack([tag_update(row, i) for i, row in enumerate(np.asarray(updates))])
    if absent is not None:
        rows[np.asarray(absent, dtype=bool)] = 0
    return rows
