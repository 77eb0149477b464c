"""Benchmarks (not timed tests): each module compares our pipeline with plain face_recognition side by side.

Run them all with `python -m bench` (or `make bench`), or one with `python -m bench.<module>`. Each module
has a `main()`; modules whose name starts with `_` are helpers and are not run. Real faces come from
$BOT_TEST_FACES (default: ../shared/faces next to the repository). The machine may be shared, so read the
numbers as medians of a noisy run, not as guarantees.
"""
