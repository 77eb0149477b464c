"""The accuracy bench's own arithmetic: "agrees within 1.5x" as CONTRACTS ### 12 defines it, and the DET reading
that never lets more strangers through than the FPIR it is read at (bench/accuracy.py)."""
from __future__ import annotations

import numpy as np

from bench import accuracy


def test_agrees_is_the_observed_interval_overlapping_p_over_and_times_one_and_a_half():
    # 13/1500 = 0.87 %, interval [0.5, 1.5] %: overlaps [0.67, 1.5] % around 1 %.
    assert accuracy.agrees(13, 1500, 0.01)
    # 45/1500 = 3 %, interval [2.2, 4.0] %: above 1.5 x 1 %.
    assert not accuracy.agrees(45, 1500, 0.01)
    # 0/1500, interval [0, 0.26] %: below 5 % / 1.5.
    assert not accuracy.agrees(0, 1500, 0.05)
    # At the edge: the interval's top just above p/1.5 overlaps, just below does not.
    _, hi = accuracy.wilson(5, 1500)
    assert accuracy.agrees(5, 1500, hi * 1.5 * 0.99)
    assert not accuracy.agrees(5, 1500, hi * 1.5 * 1.01)


def _search(mated: bool, distance: float, mate_first: bool = True) -> accuracy.Search:
    return accuracy.Search(fold=1, mated=mated, person="p" if mated else None,
                           distances=np.array([distance, 0.7]), rank1_is_mate=mated and mate_first)


def test_fnir_at_reads_the_threshold_off_the_non_mated_searches_and_never_exceeds_the_fpir():
    strangers = [_search(False, d) for d in np.linspace(0.30, 0.69, 100)]  # the closest at 0.30
    mates = [_search(True, d) for d in (0.20, 0.29, 0.305, 0.40)] + [_search(True, 0.1, mate_first=False)]
    miss, n_m, fp, n_n = accuracy.fnir_at(mates + strangers, accuracy.neg_distance, 0.01)
    # 1 % of 100 strangers: one may pass (the closest), so the cut is the second stranger's distance (0.304)...
    assert (n_n, fp) == (100, 1)
    # ...of 5 mated searches, those at 0.305 and 0.40 are missed, and so is the one whose rank 1 is someone else.
    assert (miss, n_m) == (3, 5)
    miss, _, fp, _ = accuracy.fnir_at(mates + strangers, accuracy.neg_distance, 0.02)
    assert (fp, miss) == (2, 2)
