"""Distances behind the default threshold: every pair of photos in people/, group faces, the non-enrolled case.

    .venv/bin/python -m bench.threshold

Not a speed benchmark: it prints the numbers the README's threshold section quotes, with this engine and
the configured settings, so anyone can reproduce them. Same-person pairs include the four resizes of one
Obama shot; they are also shown without them.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import numpy as np

from bench.probe_pipeline import faces_root
from bot.config import ImageSettings, SearchSettings
from bot.faces.engine import analyse_bytes

RESIZES = {"obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg", "obama-1080p.jpg"}


def _encodings(root: Path) -> dict[tuple[str, str], np.ndarray]:
    """(person, file) -> encoding, for every people/ photo with exactly one face."""
    found = {}
    for path in sorted((root / "people").glob("*/*")):
        probe = analyse_bytes(path.read_bytes(), ImageSettings())
        if len(probe.faces) == 1:
            found[(path.parent.name, path.name)] = probe.faces[0].encoding
    return found


def _row(label: str, values: list[float]) -> str:
    if not values:
        return f"| {label} | 0 | – | – | – |"
    return (f"| {label} | {len(values)} | {min(values):.3f} | {statistics.median(values):.3f} | "
            f"{max(values):.3f} |")


def main() -> int:
    """Print the pair-distance table, group-photo matches and the non-enrolled check; 0 when the default
    threshold separates every pair here, else 1."""
    root = faces_root()
    threshold = SearchSettings().threshold
    enc = _encodings(root)
    same, same_no_resizes, different = [], [], []
    for (a, ea), (b, eb) in itertools.combinations(enc.items(), 2):
        d = float(np.linalg.norm(ea - eb))
        if a[0] == b[0]:
            same.append(d)
            if not (a[1] in RESIZES and b[1] in RESIZES):
                same_no_resizes.append(d)
        else:
            different.append(d)
    people = sorted({p for p, _ in enc})
    print(f"\n### Pair distances, {len(enc)} photos of {len(people)} people (threshold {threshold})\n")
    print("| pairs | count | min | median | max |\n|---|---:|---:|---:|---:|")
    print(_row("same person", same))
    print(_row("same person, without the four resizes of one shot", same_no_resizes))
    print(_row("different people", different))

    print("\n### Group photos: each face's nearest enrolled person\n")
    print("| photo | face | nearest | distance | next other person |\n|---|---:|---|---:|---:|")
    for path in sorted((root / "group").glob("*")):
        probe = analyse_bytes(path.read_bytes(), ImageSettings())
        for face in probe.faces:
            best: dict[str, float] = {}
            for (person, _), e in enc.items():
                best[person] = min(best.get(person, 9.0), float(np.linalg.norm(face.encoding - e)))
            ranked = sorted(best.items(), key=lambda kv: kv[1])
            print(f"| {path.name} | {face.index} | {ranked[0][0]} | {ranked[0][1]:.3f} | {ranked[1][1]:.3f} |")

    lin = [float(np.linalg.norm(e - o)) for (p, _), e in enc.items() if p == "lin_manuel_miranda"
           for (q, _), o in enc.items() if q != "lin_manuel_miranda"]
    nearest = min(lin) if lin else float("nan")
    print(f"\nlin_manuel_miranda (not enrolled) nearest other person: {nearest:.3f} -> "
          f"{'no candidate' if nearest > threshold else 'a FALSE candidate'} at {threshold}")
    ok = max(same) <= threshold < min(different) and nearest > threshold
    print(f"default threshold {threshold} separates every pair here: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
