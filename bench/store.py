"""The store (issue 17): the data dir's files and PostgreSQL side by side in one run, against the issue's targets.

    .venv/bin/python -m bench.store [--only ack,latency,appends,failover,kills] [--uploads 20] [--samples 300]
                                    [--runs 10] [--appends 2000] [--failovers 6] [--kills 20] [--workers 2]

A throwaway PostgreSQL comes from the pgserver wheel (tests/pg_fixtures.py: its own folder under the system temp
dir, the login roles frbot_owner and frbot_app as a DBA creates them); one database per part, owned by frbot_owner
and migrated by it (`bot.store.pg.schema.migrate`); the servers connect as frbot_app with BOT_DATABASE_URL and
BOT_AUDIT_KEY. Everything is removed afterwards. The parts, each on files and on PostgreSQL in this run:
    ack       Slack ack latency with `--uploads` searches in flight (bench/slack_ack.py's rounds; files first,
              then PostgreSQL, the gallery copied into the database as `store copy` moves one). Target: p99 <= 100
              ms on PostgreSQL.
    latency   attestation -> result post (bench/slack_latency.py's run), both servers open at once and their runs
              interleaved, so load from other jobs hits both alike. Target: PostgreSQL's median within 20 ms of
              the files'.
    appends   audit appends a second: `bot.store.audit_log.AuditLog` (fsynced file, cross-process file lock)
              against `bot.store.pg.audit.PgAuditLog` over a psycopg_pool pool (a committed transaction under an
              advisory lock each); one writer, then 4 writer threads on one log object. The chain verifies after.
    failover  kill -9 of the leading process; seconds until the other's poll (every LEADER_POLL_S, as the
              server polls) leads (bench/_store_replicas.py). Target: <= 15 s. PostgreSQL only: a data dir has one
              server.
    kills     two `python -m bot serve` replicas under load, one of them killed -9 and restarted `--kills` times
              (bench/_store_replicas.py); requests that never ended, results posted twice. Target: 0 and 0.
              PostgreSQL only: two servers on one data dir are refused.
Needs BOT_TEST_FACES (the Slack parts). Quote medians and ratios: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import slack_ack
from bench._slack_harness import Bench, machine_line, median, quantile
from bench.slack_latency import one_run

AUDIT_KEY = "the-benchmark-audit-key-0123456789abcdef"  # BOT_AUDIT_KEY of every server on the database
ACK_TARGET_MS = 100.0
LATENCY_TARGET_MS = 20.0
FAILOVER_TARGET_S = 15.0
PARTS = ("ack", "latency", "appends", "failover", "kills")
STORES = ("files", "postgresql")


# ----------------------------------------------------------------------------------------------- the database


class Postgres:
    """A throwaway PostgreSQL (pgserver) and its databases, each migrated by frbot_owner; `close()` removes all."""

    def __init__(self) -> None:
        from tests.pg_fixtures import postgres_server

        self._stack = contextlib.ExitStack()
        self.server = self._stack.enter_context(postgres_server(f"bench-{time.monotonic_ns()}"))

    def database(self) -> Any:
        """A new database (tests.pg_fixtures.Database: owner, app and admin URLs) at the current schema."""
        import psycopg

        from bot.store.pg import schema
        from tests.pg_fixtures import new_database

        db = self._stack.enter_context(contextlib.contextmanager(new_database)(self.server))
        with psycopg.connect(db.owner_url, autocommit=True) as owner:
            schema.migrate(owner)
        return db

    def env(self) -> dict[str, str]:
        """BOT_DATABASE_URL (a new migrated database, as the app's role) and BOT_AUDIT_KEY, as a replica gets them."""
        return {"BOT_DATABASE_URL": self.database().app_url, "BOT_AUDIT_KEY": AUDIT_KEY}

    def describe(self) -> str:
        """The server's version and its durability settings (the appends' cost depends on them)."""
        import psycopg

        with psycopg.connect(self.server[0], autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            fsync = conn.execute("SHOW fsync").fetchone()[0]
            commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
        return f"PostgreSQL {version} (pgserver, Unix socket), fsync={fsync}, synchronous_commit={commit}"

    def close(self) -> None:
        self._stack.close()


# ------------------------------------------------------------------------------------------------- 1. ack


@contextlib.contextmanager
def replay_checks() -> Iterator[list[float]]:
    """The ms of each replay check before an ack (`bot.slack.server._replayed`: memory on files, a database read
    in an I/O thread on PostgreSQL), timed by a wrapper for the run only (the bot's code is not changed)."""
    from bot.slack import server

    times: list[float] = []
    original = server._replayed

    async def timed(rt: Any, key: str, now: float) -> bool:
        start = time.perf_counter()
        try:
            return await original(rt, key, now)
        finally:
            times.append((time.perf_counter() - start) * 1000)

    server._replayed = timed
    try:
        yield times
    finally:
        server._replayed = original


def ack(args: argparse.Namespace, pg: Postgres) -> dict[str, dict[str, Any]]:
    """slack_ack's rounds on each store: the loaded samples' ms, the searches' ms, the replay checks' ms."""
    out = {}
    for store in STORES:
        ns = argparse.Namespace(uploads=args.uploads, samples=args.samples, interval_ms=20.0, workers=args.workers,
                                max_rounds=8, find_blockers=False)
        print(f"  ack on {store}…", file=sys.stderr, flush=True)
        with replay_checks() as checks:
            _baseline, rounds, _lags, _ = asyncio.run(slack_ack.measure(ns, pg.env() if store == "postgresql"
                                                                        else None))
        samples = [s for r in rounds for s in r.samples]
        out[store] = {"ms": [s.sent.ms for s in samples], "bad": sum(s.sent.status != 200 for s in samples),
                      "flight": median([s.in_flight for s in samples]), "rounds": len(rounds),
                      "searches": [ms for r in rounds for ms in r.search_ms], "replay": checks,
                      "complete": all(len(r.search_ms) == args.uploads for r in rounds), "load": machine_line()}
    return out


# --------------------------------------------------------------------------------------------- 2. latency


async def _latency(runs: int, workers: int, env: dict[str, str]) -> dict[str, list[dict]]:
    benches = {"files": await Bench.open(workers=workers),
               "postgresql": await Bench.open(workers=workers, store_env=env)}
    try:
        photo = benches["files"].photo()
        for bench in benches.values():
            await one_run(bench, photo)  # warm-up: connections, the gallery, the call thread; not counted
        rows: dict[str, list[dict]] = {s: [] for s in STORES}
        for i in range(runs):
            order = STORES if i % 2 == 0 else STORES[::-1]  # neither store always goes first
            for store in order:
                rows[store].append(await one_run(benches[store], photo))
                await benches[store].clear_calls()
        return rows
    finally:
        for bench in benches.values():
            await bench.close()


def latency(args: argparse.Namespace, pg: Postgres) -> dict[str, list[dict]]:
    """slack_latency's run, interleaved on the two stores."""
    print("  attestation → result on both…", file=sys.stderr, flush=True)
    return asyncio.run(_latency(args.runs, args.workers, pg.env()))


# ----------------------------------------------------------------------------------------------- 3. appends


def search_entry(i: int) -> dict[str, Any]:
    """The fields of a search entry about the size the bot writes (five candidates, the attestation)."""
    return {
        "outcome": "candidates", "request_id": f"FR-B{i:07d}", "call_number": "26-012345",
        "requester": {"id": "U0OFFICER1", "name": "Ofc. One"}, "channel": "CCASE1", "thread_ts": f"{i}.000100",
        "purpose": "investigation", "justification": "Suspect in an armed robbery at 5th and Main; witness photo.",
        "attestation": {"attested": True, "text": "I attest this search is for a legitimate law enforcement purpose."},
        "file_id": f"F{i:07d}", "probe_sha256": f"{i:064x}", "model": "sface", "gallery_generation": 3,
        "gallery_subjects": 5, "candidates": [{"subject_id": f"subject_{k}", "distance": 0.31 + k / 50,
                                               "score": 88 - 7 * k, "image": f"{k:064x}"} for k in range(5)],
    }


def _timed_appends(log: Any, n: int, writers: int) -> float:
    """Appends a second: `n` search entries by `writers` threads on one log object."""
    errors: list[BaseException] = []

    def write(first: int, count: int) -> None:
        try:
            for i in range(first, first + count):
                log.append("search", **search_entry(i))
        except BaseException as exc:  # noqa: BLE001 - reported below, not swallowed
            errors.append(exc)

    share = n // writers
    threads = [threading.Thread(target=write, args=(w * share, share)) for w in range(writers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return share * writers / seconds


def appends(args: argparse.Namespace, pg: Postgres) -> dict[tuple[str, int], dict[str, Any]]:
    """Appends a second on each store, 1 writer then 4; alternated store by store (3 rounds, the median kept)."""
    from psycopg_pool import ConnectionPool

    from bot.store.audit_log import AuditLog
    from bot.store.pg.audit import PgAuditLog

    print("  audit appends on both…", file=sys.stderr, flush=True)
    db = pg.database()
    key = AUDIT_KEY.encode()
    out: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="frbot-bench-audit-") as tmp, \
            ConnectionPool(db.app_url, min_size=4, max_size=8, open=True, name="bench") as pool:
        logs: dict[str, Callable[[], Any]] = {
            "files": lambda: AuditLog(Path(tmp), key=key, key_source="env", clock=lambda: datetime.now(UTC)),
            "postgresql": lambda: PgAuditLog(pool.connection, key=key),
        }
        rates: dict[tuple[str, int], list[float]] = {}
        for _round in range(3):
            for writers in (1, 4):
                for store in STORES:
                    rates.setdefault((store, writers), []).append(_timed_appends(logs[store](), args.appends,
                                                                                 writers))
        for store in STORES:
            verified = logs[store]().verify()
            for writers in (1, 4):
                out[(store, writers)] = {"rate": statistics.median(rates[(store, writers)]),
                                         "ok": verified.ok, "entries": verified.count}
    return out


# ---------------------------------------------------------------------------------------- 4. and 5. replicas


def failover(args: argparse.Namespace, pg: Postgres) -> list[float]:
    from bench._store_replicas import failover as measure
    from bot.slack.server import LEADER_POLL_S

    print(f"  leader failover, {args.failovers} rounds…", file=sys.stderr, flush=True)
    times, overlaps = asyncio.run(measure(pg.database().app_url, args.failovers, LEADER_POLL_S))
    if overlaps:
        print(f"  {overlaps} polls led while the other process still led", file=sys.stderr)
    return times


def kills(args: argparse.Namespace, pg: Postgres) -> Any:
    from psycopg_pool import ConnectionPool

    from bench._store_replicas import kills as measure

    print(f"  {args.kills} kill -9 of a replica under load…", file=sys.stderr, flush=True)
    env = pg.env()
    with ConnectionPool(env["BOT_DATABASE_URL"], min_size=1, max_size=2, open=True, name="bench-read") as pool:
        return asyncio.run(measure(env, pool.connection, kills=args.kills, every=args.every, drain_s=args.drain_s))


# ------------------------------------------------------------------------------------------------- report


def _ms(values: list[float]) -> str:
    return f"{median(values):.1f} / {quantile(values, 0.99):.1f} / {max(values):.0f}"


def report(args: argparse.Namespace, found: dict[str, Any], pg_line: str) -> bool:
    """Print the tables; False when a target is missed or a run lost or duplicated something."""
    good = True
    print(f"{pg_line}; {machine_line()} at end\n")
    print("| what | files | PostgreSQL | PostgreSQL − files (or ratio) | target |")
    print("|---|---:|---:|---:|---|")
    if "ack" in found:
        a = found["ack"]
        p99 = {s: quantile(a[s]["ms"], 0.99) for s in STORES}
        ok = p99["postgresql"] <= ACK_TARGET_MS and all(a[s]["complete"] and not a[s]["bad"] for s in STORES)
        good &= ok
        print(f"| Slack ack p50 / p99 / max ms, {args.uploads} searches in flight ({len(a['files']['ms'])} and "
              f"{len(a['postgresql']['ms'])} samples, median in flight {a['files']['flight']:.0f} and "
              f"{a['postgresql']['flight']:.0f}) | {_ms(a['files']['ms'])} | {_ms(a['postgresql']['ms'])} "
              f"| p99 ×{p99['postgresql'] / p99['files']:.2f} | p99 ≤ {ACK_TARGET_MS:.0f} ms "
              f"{'✔' if ok else '✘'} |")
        print(f"| … the replay check before each ack, p50 / p99 / max ms (every request of the run) "
              f"| {_ms(a['files']['replay'])} | {_ms(a['postgresql']['replay'])} | — | — |")
        print(f"| … those rounds' attestation → result, median ms ({args.uploads} at once) "
              f"| {median(a['files']['searches']):.0f} | {median(a['postgresql']['searches']):.0f} "
              f"| ×{median(a['postgresql']['searches']) / median(a['files']['searches']):.2f} | — |")
    if "latency" in found:
        totals = {s: [(r["result"] - r["attest"]) * 1000 for r in found["latency"][s]] for s in STORES}
        gap = median(totals["postgresql"]) - median(totals["files"])
        right = all(r["outcome"] == "candidates" and r["top"].startswith("1. obama")
                    for s in STORES for r in found["latency"][s])
        ok = gap <= LATENCY_TARGET_MS and right
        good &= ok
        print(f"| attestation → result posted, median / p90 ms ({args.runs} runs each, interleaved) "
              f"| {median(totals['files']):.0f} / {quantile(totals['files'], 0.9):.0f} "
              f"| {median(totals['postgresql']):.0f} / {quantile(totals['postgresql'], 0.9):.0f} "
              f"| {gap:+.0f} ms | ≤ +{LATENCY_TARGET_MS:.0f} ms {'✔' if ok else '✘'} |")
    if "appends" in found:
        ap = found["appends"]
        for writers in (1, 4):
            f, p = ap[("files", writers)], ap[("postgresql", writers)]
            good &= f["ok"] and p["ok"]
            print(f"| audit appends a second, {writers} writer{'s (threads, one log)' if writers > 1 else ''} "
                  f"({args.appends} search entries, median of 3) | {f['rate']:.0f} | {p['rate']:.0f} "
                  f"| ×{p['rate'] / f['rate']:.2f} | — |")
        chain = all(ap[(s, 1)]["ok"] for s in STORES)
        print(f"| … the chain afterwards | {ap[('files', 1)]['entries']} entries "
              f"{'verify' if ap[('files', 1)]['ok'] else 'FAIL'} | {ap[('postgresql', 1)]['entries']} entries "
              f"{'verify' if ap[('postgresql', 1)]['ok'] else 'FAIL'} | — | {'✔' if chain else '✘'} |")
    if "failover" in found:
        t = found["failover"]
        ok = max(t) <= FAILOVER_TARGET_S
        good &= ok
        print(f"| leader failover after kill -9, median / max s ({len(t)} round{'s' * (len(t) != 1)}, polls every 5 s) | — "
              f"| {median(t):.1f} / {max(t):.1f} | — | ≤ {FAILOVER_TARGET_S:.0f} s {'✔' if ok else '✘'} |")
    if "kills" in found:
        k = found["kills"]
        attested = [r for r in k.requests if r.attest_to]
        ok = not k.not_ended and not k.results_twice and not k.searches_twice and not k.posts_twice and k.audit_ok
        good &= ok
        print(f"| {k.kills} kill -9 of a replica under load ({len(k.requests)} searches, {len(attested)} attested, "
              f"median {median(k.in_flight_at_kill):.0f} in flight on the victim): not ended / results posted "
              f"twice | — | {len(k.not_ended)} / {len(k.results_twice)} | — | 0 / 0 {'✔' if ok else '✘'} |")
        if k.takeover_s:
            print(f"| … the survivor's /healthz leads after the leader's kill -9, median / max s "
                  f"({len(k.takeover_s)} of the kills) | — | {median(k.takeover_s):.1f} / {max(k.takeover_s):.1f} "
                  f"| — | ≤ {FAILOVER_TARGET_S:.0f} s |")
    if "kills" in found:
        _kill_details(found["kills"])
    return good


def _kill_details(k: Any) -> None:
    stopped: dict[str, int] = {}
    for r in k.requests:
        if r.problem:
            stopped[r.problem] = stopped.get(r.problem, 0) + 1
    print("\n| the kill run | |")
    print("|---|---|")
    print(f"| searches started / attested | {len(k.requests)} / {sum(1 for r in k.requests if r.attest_to)} |")
    print(f"| stopped before the attestation | {', '.join(f'{n} {p}' for p, n in stopped.items()) or 0} |")
    print(f"| never ended (request numbers) | {k.not_ended or 0} |")
    print(f"| kills of the leader / of the other replica | {len(k.takeover_s)} / {k.kills - len(k.takeover_s)} |")
    print(f"| threads with two result posts / request ids searched twice / post_ids posted twice "
          f"| {len(k.results_twice)} / {k.searches_twice} / {k.posts_twice} |")
    print(f"| searches of the victim in flight at each kill, median / max | {median(k.in_flight_at_kill):.0f} / "
          f"{max(k.in_flight_at_kill, default=0)} |")
    print(f"| kill -9 → restarted replica answers /healthz, median / max s | {median(k.restart_s):.1f} / "
          f"{max(k.restart_s):.1f} |")
    print(f"| deliveries Slack repeated (replica dead or over 3 s) | {k.retries} |")
    print(f"| after the last restart, until every attested request ended | {k.drain_s:.0f} s |")
    print(f"| audit chain | {k.audit_entries} entries, {'verifies' if k.audit_ok else 'DOES NOT VERIFY'} |")
    print(f"| the run | {k.seconds / 60:.1f} min |")
    print(f"| search entries by outcome / result posts | "
          f"{', '.join(f'{n} {o}' for o, n in sorted(k.extra['outcomes'].items()))} / {k.extra['results']} |")
    for n, thread_ts, upload_to, attest_to, attested, problem, state in k.extra.get("lost", []):
        kills = [f"{victim}{' (leader)' if led else ''} at {at:.1f} s" for at, victim, led in k.extra["kills"]
                 if attested is not None and abs(at - attested) < 20]
        print(f"\nrequest {n} (thread {thread_ts}) did not end: upload to {upload_to}, attestation to {attest_to}"
              f"{f' at {attested:.1f} s' if attested is not None else ''}{f' ({problem})' if problem else ''}; "
              f"kills within 20 s: {', '.join(kills) or 'none'}; {state}")
    if k.extra.get("kept"):
        print(f"\nthe replicas' data dirs and logs are kept in {k.extra['kept']}")


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for and print the tables; 1 when a target is missed or something was lost."""
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--uploads", type=int, default=20, help="ack: searches in flight at once")
    parser.add_argument("--samples", type=int, default=300, help="ack: requests timed in the loaded windows")
    parser.add_argument("--runs", type=int, default=10, help="latency: runs on each store")
    parser.add_argument("--appends", type=int, default=2000, help="appends: entries per measure")
    parser.add_argument("--failovers", type=int, default=6, help="failover: kill -9 rounds")
    parser.add_argument("--kills", type=int, default=20, help="kills: kill -9 of a replica")
    parser.add_argument("--every", type=float, default=1.5, help="kills: seconds between two new searches")
    parser.add_argument("--drain-s", type=float, default=240.0,
                        help="kills: how long the requests may take to end after the last restart")
    parser.add_argument("--workers", type=int, default=2, help="face worker processes of the in-process servers")
    args = parser.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {', '.join(sorted(unknown))}")
    measures: dict[str, Callable[[argparse.Namespace, Postgres], Any]] = {
        "ack": ack, "latency": latency, "appends": appends, "failover": failover, "kills": kills}
    pg = Postgres()
    try:
        pg_line = pg.describe()
        found = {part: measures[part](args, pg) for part in PARTS if part in parts}
    finally:
        pg.close()
    return 0 if report(args, found, pg_line) else 1


if __name__ == "__main__":
    sys.exit(main())
