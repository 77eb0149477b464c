"""Which replica leads, on the file store: the only one. A data dir is held by one process at a time
(bot.store.disk.hold_data_dir), so that process runs the periodic work; this has the interface of
bot.store.pg.leader.Leadership so the server asks either the same way.
"""
from __future__ import annotations


class SoleLeadership:
    """Always the leader until closed: the one process on its data dir."""

    def __init__(self, replica_id: str, *, keepalive_s: float = 5) -> None:
        self.replica_id = replica_id
        self.keepalive_s = keepalive_s
        self._open = True

    def __repr__(self) -> str:
        return f"SoleLeadership({self.replica_id!r}, leader={self.is_leader})"

    @property
    def is_leader(self) -> bool:
        """True until `close()`."""
        return self._open

    def poll(self) -> bool:
        """Nothing to keep alive; returns `is_leader`."""
        return self.is_leader

    def close(self) -> None:
        """Stop leading (the process is shutting down)."""
        self._open = False
