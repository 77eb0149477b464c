"""A server on a shared database (issue 17): what only a replica among several does. A gallery generation
committed from another machine is loaded as soon as it is announced (LISTEN), before any search asks for it."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytestmark = pytest.mark.parametrize("store_kind", ["postgresql"])


async def test_a_generation_committed_elsewhere_is_loaded_without_waiting_for_a_search(harness):
    await harness.start()
    loaded = harness.rt.core.gallery
    before = loaded.generation
    elsewhere = harness.backend(harness.data_dir.parent / "another-machine").gallery()
    template = np.ones(128, dtype=np.float32) / np.sqrt(128)
    elsewhere.change(loaded.model, subjects=[{"subject_id": "new_person", "name": "New Person", "record_ref": "R-9"}],
                     images=[{"sha256": "e" * 64, "subject_id": "new_person", "source": "/photos/new.jpg",
                              "box": "{}", "actor": "admin"}], encodings=template.reshape(1, -1))
    deadline = time.monotonic() + 10
    while loaded.generation == before:  # read as loaded: nothing here asks the database
        assert time.monotonic() < deadline, "the announced generation was never loaded"
        await asyncio.sleep(0.05)
    assert loaded.generation == before + 1 and loaded.subject_count == 5
