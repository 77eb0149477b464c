"""Exact 1:N search: same answer as face_recognition.face_distance, one row per subject, within threshold."""
from __future__ import annotations

import numpy as np
import pytest

from bot.faces.search import MAX_K, nearest, squared_norms


def _gallery(n: int = 3000, subjects: int = 600, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random encodings at the scale of dlib's (norms ~1), subjects with several rows each."""
    rng = np.random.default_rng(seed)
    matrix = (rng.standard_normal((n, 128)) * 0.09).astype(np.float32)
    row_subject = rng.integers(0, subjects, size=n).astype(np.int32)
    return matrix, squared_norms(matrix), row_subject


def _reference(matrix, row_subject, probe, threshold, k):
    """The plain answer: face_distance in float64, best row per subject, ascending, within threshold."""
    import face_recognition

    dist = face_recognition.face_distance(matrix.astype(np.float64), probe.astype(np.float64))
    best: dict[int, tuple[float, int]] = {}
    for row, (subject, d) in enumerate(zip(row_subject.tolist(), dist.tolist())):
        if d <= threshold and (subject not in best or (d, row) < best[subject]):
            best[subject] = (d, row)
    return [(row, d) for d, row in sorted(best.values())][: min(k, MAX_K)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_ranking_and_distances_as_face_distance(seed):
    matrix, sq, row_subject = _gallery(seed=seed)
    rng = np.random.default_rng(seed + 100)
    # A probe near an existing row, so that many rows fall within the threshold.
    probe = matrix[rng.integers(len(matrix))] + (rng.standard_normal(128) * 0.03).astype(np.float32)
    threshold = 1.45
    got = nearest(matrix, sq, row_subject, probe, threshold=threshold, k=20)
    want = _reference(matrix, row_subject, probe, threshold, 20)
    assert len(got) == 20
    assert [row for row, _ in got] == [row for row, _ in want]
    np.testing.assert_allclose([d for _, d in got], [d for _, d in want], rtol=0, atol=1e-6)


def test_one_row_per_subject_its_best_image():
    matrix, sq, _ = _gallery(n=50)
    row_subject = np.zeros(50, dtype=np.int32)  # every row is one subject
    probe = matrix[17].copy()
    got = nearest(matrix, sq, row_subject, probe, threshold=10.0, k=5)
    assert got == [(17, pytest.approx(0.0, abs=1e-6))]


def test_threshold_excludes_farther_rows_and_keeps_equal_distance():
    matrix = np.zeros((3, 128), dtype=np.float32)
    matrix[0, 0], matrix[1, 0], matrix[2, 0] = 0.25, 0.5, 0.75
    row_subject = np.array([10, 11, 12], dtype=np.int32)
    probe = np.zeros(128, dtype=np.float32)
    got = nearest(matrix, squared_norms(matrix), row_subject, probe, threshold=0.5, k=5)
    assert [row for row, _ in got] == [0, 1]  # 0.5 is within (<=) the threshold, 0.75 is not
    assert got[1][1] == pytest.approx(0.5)
    assert nearest(matrix, squared_norms(matrix), row_subject, probe, threshold=0.2, k=5) == []


def test_k_is_respected_and_capped_at_20():
    matrix, sq, _ = _gallery(n=100)
    row_subject = np.arange(100, dtype=np.int32)
    probe = matrix[0]
    assert len(nearest(matrix, sq, row_subject, probe, threshold=100.0, k=3)) == 3
    assert len(nearest(matrix, sq, row_subject, probe, threshold=100.0, k=500)) == MAX_K
    assert nearest(matrix, sq, row_subject, probe, threshold=100.0, k=0) == []


def test_empty_gallery_gives_no_candidate():
    empty = np.zeros((0, 128), dtype=np.float32)
    got = nearest(empty, squared_norms(empty), np.zeros(0, dtype=np.int32), np.ones(128), threshold=0.6, k=5)
    assert got == []


def test_works_on_a_read_only_memmap(tmp_path):
    matrix, sq, row_subject = _gallery(n=500)
    np.save(tmp_path / "m.npy", matrix)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")
    probe = matrix[42]
    assert nearest(mapped, sq, row_subject, probe, threshold=0.5, k=5)[0][0] == 42


def test_probe_of_the_wrong_length_is_refused():
    matrix, sq, row_subject = _gallery(n=10)
    with pytest.raises(ValueError):
        nearest(matrix, sq, row_subject, np.zeros(64, dtype=np.float32), threshold=0.6, k=5)
