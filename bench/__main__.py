"""Run every benchmark module in bench/ (each one's `main()`), in name order; `draw_review_card` (which
redraws the README's picture) is no benchmark and is left out."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench

NOT_BENCHMARKS = {"draw_review_card"}


def main() -> int:
    """Import and run each bench module whose name does not start with '_'; return 1 if any failed."""
    failed = []
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in NOT_BENCHMARKS:
            continue
        print(f"\n## bench.{info.name}\n", flush=True)
        sys.argv = [f"bench.{info.name}"]  # each module's own argument defaults, not ours
        try:
            if importlib.import_module(f"bench.{info.name}").main():  # a non-zero return is a failure
                failed.append(info.name)
        except SystemExit as exc:  # argparse-style mains may exit
            if exc.code not in (None, 0):
                failed.append(info.name)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other benchmarks
            print(f"bench.{info.name} failed: {exc!r}", file=sys.stderr)
            failed.append(info.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
