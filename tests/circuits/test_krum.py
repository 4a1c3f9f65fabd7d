"""The numpy reference against cases small enough to check by hand."""

import numpy as np
import pytest

from stakelearn.circuits.krum import (
    KrumParams,
    aggregate,
    krum_round,
    krum_scores,
    multikrum_select,
    pairwise_sq_distances,
)
from stakelearn.errors import InputError

# Five 1-d updates: 0, 1, 2, 3 and an outlier at 10.
LINE = np.array([[0], [1], [2], [3], [10]])


def test_pairwise_sq_distances_by_hand():
    d = pairwise_sq_distances(np.array([[0, 0], [3, 4], [0, 1]]))
    assert d.tolist() == [[0, 25, 1], [25, 0, 18], [1, 18, 0]]


def test_krum_scores_by_hand():
    # n=5, f=1: each score sums the n-f-2 = 2 nearest others' squared distances.
    # 0: 1+4=5; 1: 1+1=2; 2: 1+1=2; 3: 1+4=5; 10: 49+64=113
    assert krum_scores(LINE, f=1).tolist() == [5, 2, 2, 5, 113]


def test_multikrum_select_breaks_ties_by_lower_index():
    assert multikrum_select(np.array([5, 2, 2, 5, 113]), m=3).tolist() == [True, True, True, False, False]


def test_krum_round_flags_the_outlier_and_sums_the_selected():
    result = krum_round(LINE, KrumParams(n=5, f=1, m=4))
    assert result.selected == [0, 1, 2, 3]
    assert result.total.tolist() == [6]
    assert aggregate(LINE, result.mask).tolist() == [1.5]


@pytest.mark.parametrize("n, f", [(4, 1), (2, 0), (6, 2)])
def test_krum_params_reject_too_few_clients(n, f):
    with pytest.raises(InputError, match="n > 2f \\+ 2"):
        KrumParams(n=n, f=f, m=1)


@pytest.mark.parametrize("m", [0, 5])
def test_krum_params_reject_selection_outside_range(m):
    with pytest.raises(InputError, match="1..n-f"):
        KrumParams(n=5, f=1, m=m)
