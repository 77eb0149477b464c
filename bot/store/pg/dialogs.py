"""The request dialogs and their dedupe claims in PostgreSQL (`dialogs`, `dialog_images`, `dialog_claims`,
bot/store/pg/migrations/002_records.sql): the file DialogStore's calls, answered the same way, for any number of
replicas on one database.

A transition (`update`) is one transaction: the row is read `FOR UPDATE` (a reply on replica A waits for a button
on replica B to commit, then transitions what B wrote), and written only over the version it read. A dedupe claim
is an `INSERT ... ON CONFLICT DO NOTHING`: of every replica offered one event, one inserts it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from bot.request.transitions import Dialog, Result, iso_time, parse_time
from bot.store.pg.records import StaleWrite, write_checked

_COLUMNS = "channel, thread_ts, created_at, updated_at, terminal, doc"


def _row(dialog: Dialog) -> tuple[Any, ...]:
    """The columns of `_COLUMNS` for `dialog`."""
    return (dialog.channel, dialog.thread_ts, parse_time(dialog.created_at), parse_time(dialog.updated_at),
            dialog.terminal, Jsonb(dialog.to_dict()))


class PgDialogStore:
    """Dialogs and dedupe claims of one database; `connect()` gives a context-managed connection that commits on
    a clean exit (a psycopg_pool pool's `connection`, or `psycopg.connect`)."""

    def __init__(self, connect: Callable[[], Any], *, claim_ttl: timedelta = timedelta(days=3)) -> None:
        self._connect = connect
        self._claim_ttl = claim_ttl
        self._last_prune: datetime | None = None
        self._prune_lock = threading.Lock()

    def threads(self) -> dict[tuple[str, str], str]:
        """(channel, thread_ts) -> dialog_id of every stored dialog: the server's in-memory thread index."""
        with self._connect() as conn:
            rows = conn.execute("SELECT channel, thread_ts, dialog_id FROM dialogs ORDER BY added").fetchall()
        return {(channel, ts): dialog_id for channel, ts, dialog_id in rows}

    def thread_of(self, channel: str, thread_ts: str) -> str | None:
        """The id of the dialog `by_thread` answers, without reading it: a thread another replica started."""
        with self._connect() as conn:
            row = conn.execute("SELECT dialog_id FROM dialogs WHERE channel = %s AND thread_ts = %s "
                               "ORDER BY terminal, created_at DESC, added LIMIT 1", (channel, thread_ts)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        """Nothing to close: each call borrows a connection and gives it back."""

    @staticmethod
    def _write(conn: Any, dialog: Dialog) -> None:
        """Insert or replace `dialog` (its version counts one more write) and its images' lookup rows."""
        conn.execute(
            f"INSERT INTO dialogs (dialog_id, {_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (dialog_id) DO UPDATE SET channel = EXCLUDED.channel, thread_ts = EXCLUDED.thread_ts, "
            "created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, terminal = EXCLUDED.terminal, "
            "doc = EXCLUDED.doc, version = dialogs.version + 1",
            (dialog.dialog_id, *_row(dialog)),
        )
        _write_images(conn, dialog)

    def put(self, dialog: Dialog) -> None:
        """Insert or replace a dialog."""
        with self._connect() as conn, conn.transaction():
            self._write(conn, dialog)

    def get(self, dialog_id: str) -> Dialog | None:
        """The dialog with this id, or None."""
        return self._one("SELECT doc FROM dialogs WHERE dialog_id = %s", (dialog_id,))

    def update(self, dialog_id: str, transition: Callable[[Dialog], Result]) -> Result | None:
        """Read, transition and write one dialog as one transaction holding its row; None when there is none.

        Another replica's transition of the same dialog waits for this one to commit, then reads what it wrote.
        """
        with self._connect() as conn, conn.transaction():
            row = conn.execute("SELECT doc, version FROM dialogs WHERE dialog_id = %s FOR UPDATE",
                               (dialog_id,)).fetchone()
            if row is None:
                return None
            dialog = Dialog.from_dict(row[0])
            new, effects = transition(dialog)
            if new is not dialog:
                write_checked(conn, "dialogs", "dialog_id", dialog_id, row[1],
                              f"({_COLUMNS}) = (%s, %s, %s, %s, %s, %s)", _row(new))
                _write_images(conn, new)
            return new, effects

    def _one(self, sql: str, args: tuple[Any, ...]) -> Dialog | None:
        with self._connect() as conn:
            row = conn.execute(sql, args).fetchone()
        return Dialog.from_dict(row[0]) if row else None

    def _many(self, sql: str, args: tuple[Any, ...] = ()) -> list[Dialog]:
        with self._connect() as conn:
            return [Dialog.from_dict(doc) for (doc,) in conn.execute(sql, args).fetchall()]

    def by_thread(self, channel: str, thread_ts: str) -> Dialog | None:
        """Which request is this thread? The dialog its upload started (an active one first, then newest)."""
        return self._one("SELECT doc FROM dialogs WHERE channel = %s AND thread_ts = %s "
                         "ORDER BY terminal, created_at DESC, added LIMIT 1", (channel, thread_ts))

    def by_request_id(self, request_id: str) -> Dialog | None:
        """The dialog holding the image with this request id, or None."""
        return self._one("SELECT d.doc FROM dialog_images i JOIN dialogs d USING (dialog_id) "
                         "WHERE i.request_id = %s ORDER BY d.added LIMIT 1", (request_id,))

    def by_file_id(self, file_id: str) -> Dialog | None:
        """The newest dialog holding an image of this Slack file, or None."""
        return self._one("SELECT d.doc FROM dialog_images i JOIN dialogs d USING (dialog_id) "
                         "WHERE i.file_id = %s ORDER BY d.created_at DESC, d.added LIMIT 1", (file_id,))

    def all(self) -> list[Dialog]:
        """Every stored dialog, ended ones included (audit reconciliation at start)."""
        return self._many("SELECT doc FROM dialogs ORDER BY added")

    def active(self) -> list[Dialog]:
        """Dialogs not yet ended, oldest first: for timeouts, and to resume after a restart."""
        return self._many("SELECT doc FROM dialogs WHERE NOT terminal ORDER BY created_at, added")

    def delete_older_than(self, cutoff: datetime) -> int:
        """Remove ended dialogs last changed before `cutoff` (dialog-state retention); returns the count.

        Active dialogs are kept whatever their age: they are still waiting on someone.
        """
        iso_time(cutoff)  # refuse a naive cutoff
        with self._connect() as conn:
            return conn.execute("DELETE FROM dialogs WHERE terminal AND updated_at < %s", (cutoff,)).rowcount

    def claim(self, key: str, now: datetime) -> bool:
        """True the first time `key` is seen (an event id, a file id, an action id + ts), False after, on every
        replica: of several offering one key at once, only the one whose INSERT lands is told True.

        Keys older than the claim TTL (default 3 days; Slack stops redelivering within the hour) are pruned, at
        most hourly by each store.
        """
        iso_time(now)
        with self._connect() as conn:
            fresh = conn.execute("INSERT INTO dialog_claims (key, at) VALUES (%s, %s) ON CONFLICT DO NOTHING "
                                 "RETURNING key", (key, now)).fetchone() is not None
            if fresh and self._prune_due(now):
                conn.execute("DELETE FROM dialog_claims WHERE at < %s", (now - self._claim_ttl,))
        return fresh

    def _prune_due(self, now: datetime) -> bool:
        with self._prune_lock:
            if self._last_prune is not None and now - self._last_prune < timedelta(hours=1):
                return False
            self._last_prune = now
            return True

    def claimed(self, key: str) -> bool:
        """Whether `key` has been claimed (and not yet pruned)."""
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM dialog_claims WHERE key = %s", (key,)).fetchone() is not None


def _write_images(conn: Any, dialog: Dialog) -> None:
    """The lookup rows of `dialog`'s images, replaced by what it holds now."""
    conn.execute("DELETE FROM dialog_images WHERE dialog_id = %s", (dialog.dialog_id,))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO dialog_images (dialog_id, request_id, file_id) VALUES (%s, %s, %s)",
                        [(dialog.dialog_id, i.request_id, i.file_id) for i in dialog.images])


__all__ = ["PgDialogStore", "StaleWrite"]
