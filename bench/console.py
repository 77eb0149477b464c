"""The console's searches page on a 100,000-entry audit log (issue 18's target: console pages <= 300 ms server time,
with the offsets index), on the data dir's files and on PostgreSQL.

    .venv/bin/python -m bench.console [--entries 100000] [--days 365] [--runs 15] [--stores files,postgresql]

A synthetic year is written once per store, chained and MAC'd exactly as the bot writes it (searches of 40
requesters with faces and candidates, examiner reviews, refusals, audit reads), the newest entry now. Then the real
console sub-application (bot.console.app.console_app: middleware, session cookie, handler, template) is served
in-process over the store through the bot's own Core, and each view is timed from the request sent to the whole
answer read (loopback HTTP included; every view also appends its `audit_access` entry, as in service). Before the
timed views, as on a running server: the leader's full chain check is on record and the file log's offsets index is
built (its first read timed apart). A view's first time is shown apart: it parses the lines the page has not
seen (bot.oversight.searches.RowCache); later views find them kept. Views, `--runs` each, medians:
    default     /console/searches: the last 30 days
    filtered    a month's range, one requester, one outcome
    call        one call number over the whole log (the index's lookup)
    every       ?from= (the whole log: every search line read; no target, said so)
    export      the default view's CSV export (the whole chain checked; no target)
    report      /console/report: a month two months back (counted from its first day on, then kept)
    trail       /console/requests/<id>: one request's trail (the lookup index)
PostgreSQL comes from the pgserver wheel (bench.store.Postgres) and is removed afterwards. Quote medians: the
machine is shared.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.audit.chain import GENESIS, canonical, entry_mac
from bot.audit.entries import iso_utc
from bot.config import Settings

KEY = "the-console-benchmark-audit-key-0123456789"
TARGET_MS = 300.0
STORES = ("files", "postgresql")
VIEWS = ("default", "filtered", "call", "every", "export", "report", "trail")
TARGETED = ("default", "filtered", "call", "report", "trail")
TZ = "America/Los_Angeles"


# ------------------------------------------------------------------------------------------ the synthetic year


def _search(rng: random.Random, n: int, requester: int) -> dict[str, Any]:
    """The fields of a search entry about the size the bot writes (faces, five candidates, versions, times)."""
    outcome = rng.choices(("candidates", "no_candidate", "denied", "cancelled", "expired", "error", "review"),
                          (50, 30, 8, 5, 3, 1, 3))[0]
    ran = outcome in ("candidates", "no_candidate", "review")
    body: dict[str, Any] = {
        "outcome": outcome, "request_id": f"FR-{n:010X}", "call_number": f"26-{rng.randrange(20000):06d}",
        "requester": {"id": f"U0OFF{requester:04d}", "name": f"Ofc. Number {requester}"}, "source": "slack",
        "channel": "C0CASE1", "thread_ts": f"{1767225600 + n}.000100", "file_id": f"F{n:09d}",
        "permalink": f"https://pd.slack.com/archives/C0CASE1/p{1767225600 + n}000100",
        "purpose": rng.choices(("investigation", "threat", "identify"), (85, 10, 5))[0] if outcome != "denied" else None,
        "justification": "Armed robbery of the corner store at 14:10; the camera recorded this man at the register, "
                         f"report 26-{n % 9999:04d}.",
        "attestation": {"attested": outcome != "denied"}, "uploaded_at": "2026-01-01T00:00:00.000000Z",
    }
    if rng.random() < 0.02:
        body["flags"] = ["protected_class"]
    if ran:
        body.update({
            "probe_sha256": f"{rng.getrandbits(256):064x}", "face_index": 1, "model": "sface",
            "faces": [{"index": 1, "box": {"top": 40, "right": 180, "bottom": 160, "left": 60}, "size": 120,
                       "quality": {"eye_px": 44, "sharpness": 130.5, "exposure": 0.52, "grayscale": False,
                                   "yaw_deg": 4.0, "level": "ok"}}],
            "candidates": [] if outcome == "no_candidate" else [
                {"rank": k, "subject_id": f"S-{rng.randrange(5000):05d}", "distance": round(0.3 + k / 40, 4),
                 "fpir_estimate": round(0.0005 * k, 6), "image": f"{rng.getrandbits(128):032x}"} for k in range(1, 6)],
            "threshold": 0.55, "target_fpir": 0.01, "gallery_subjects": 5000, "gallery_images": 14000,
            "operating_point": {"method": "gallery", "gallery_size": 5000, "calibrated_at": "2026-01-01T00:00:00Z",
                                "sample_size": 5000},
            "nearest_distances": [0.31, 0.36, 0.42], "versions": {"bot": "0.1.0", "opencv": "4.10.0"},
            "answer_times": {"call_number": "2026-01-01T00:00:05Z", "purpose": "2026-01-01T00:00:09Z"},
            "result_at": "2026-01-01T00:00:20.000000Z",
        })
    return body


def synthetic_year(entries: int, days: int, end: datetime, seed: int = 18) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, fields) of `entries` entries evenly over `days` days ending at `end`, in time order: ~45 % searches,
    a queued and a released review for each search sent to an examiner, refusals and audit reads."""
    rng = random.Random(seed)
    step = timedelta(days=days) / entries
    start = end - timedelta(days=days)
    pending: list[str] = []
    for i in range(entries):
        at = start + step * (i + 1)
        roll = rng.random()
        if pending and roll < 0.06:
            rid = pending.pop(0)
            yield at.isoformat(), {"kind": "review", "request_id": rid, "action": "release", "final": True,
                                   "leads": ["S-00001"], "shown": ["S-00001"], "ruled_out": 2}
        elif roll < 0.51:
            fields = _search(rng, i, rng.randrange(40))
            if fields["outcome"] == "review":
                pending.append(fields["request_id"])
            yield at.isoformat(), {"kind": "search", **fields}
        elif roll < 0.55:
            yield at.isoformat(), {"kind": "refusal", "reason": "not a requester",
                                   "attempts": [{"request_id": f"FR-X{i:08d}", "user": "U0STRANGER"}]}
        else:
            yield at.isoformat(), {"kind": "audit_access", "actor": {"id": "U0CHIEF", "name": "Capt. Reyes"},
                                   "action": "query", "query": {"call_number": f"26-{rng.randrange(20000):06d}"},
                                   "results": rng.randrange(5)}


def chained(entries: int, days: int, end: datetime) -> Iterator[tuple[dict[str, Any], bytes]]:
    """The synthetic year as the log holds it: each entry with seq, ts, prev and its MAC, and its canonical line."""
    key, prev = KEY.encode(), GENESIS
    for seq, (at, body) in enumerate(synthetic_year(entries, days, end), 1):
        entry = {**body, "seq": seq, "ts": iso_utc(datetime.fromisoformat(at)), "prev": prev}
        entry["mac"] = entry_mac(key, entry)
        prev = entry["mac"]
        yield entry, canonical(entry)


def write_files(data_dir: Path, entries: int, days: int, end: datetime) -> None:
    """The year as data_dir/audit/audit.jsonl (0600), as AuditLog writes it line by line."""
    from bot.store.audit_log import AuditLog

    log = AuditLog(data_dir, key=KEY.encode(), key_source="env")  # makes the 0700 folder
    with open(log.path, "wb") as fh:
        fh.writelines(line + b"\n" for _, line in chained(entries, days, end))
    log.path.chmod(0o600)


def write_database(app_url: str, entries: int, days: int, end: datetime) -> None:
    """The year into `audit_entries` in one COPY, the columns bot.store.pg.audit.insert_line fills."""
    import psycopg

    with psycopg.connect(app_url) as conn, conn.cursor() as cur, cur.copy(
            "COPY audit_entries (seq, prev, mac, line, kind, at, request_id, call_number, requester_id) FROM STDIN"
    ) as copy:
        for entry, line in chained(entries, days, end):
            requester = entry.get("requester")
            copy.write_row((entry["seq"], entry["prev"], entry["mac"], line, entry["kind"], entry["ts"],
                            entry.get("request_id"), entry.get("call_number"),
                            requester.get("id") if isinstance(requester, dict) else None))


# ------------------------------------------------------------------------------------- the console, in-process


@dataclass
class Shell:
    """What the console's handlers ask of the server's Runtime: settings, the core (audit log, records), the
    clock, and threads for blocking reads (bot.slack.runtime.Runtime's `io` and `work`)."""

    settings: Settings
    core: Any
    pool: ThreadPoolExecutor
    probes: Any = None  # the trail's probe crops (none here: every search finished)
    store: Any = None  # the dialogs (a running request's answers so far)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def io(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(func, *args, **kwargs))

    work = io


async def _timed_views(shell: Shell, runs: int, paths: dict[str, str]) -> dict[str, Any]:
    """Serve the console over `shell` on 127.0.0.1 and time each view `runs` times (ms), the first apart."""
    from aiohttp import ClientSession, web

    from bot.console.app import console_app
    from bot.console.session import COOKIE, Session, SessionCodec, session_secret

    secret = "console-bench-client-secret"
    app = web.Application()
    app.add_subapp("/console", console_app(shell, {"CONSOLE_CLIENT_ID": "1.2", "CONSOLE_CLIENT_SECRET": secret}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    out: dict[str, Any] = {}
    try:
        async with ClientSession() as http:
            async def view(path: str) -> tuple[float, int, bytes]:
                session = Session.new("U0CHIEF", "T0TEAM", "Capt. Reyes", ("command_staff",), time.time())
                cookie = {COOKIE: SessionCodec(session_secret(secret)).dumps(session)}
                start = time.perf_counter()
                async with http.get(base + path, cookies=cookie) as response:
                    body = await response.read()
                return (time.perf_counter() - start) * 1000, response.status, body

            for name, path in paths.items():
                first, status, body = await view(path)
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status}: {body[:300]!r}")
                out[f"{name}_cold"] = first
                out[name] = [(await view(path))[0] for _ in range(runs if name in TARGETED else max(3, runs // 5))]
                out[f"{name}_bytes"] = len(body)
    finally:
        await runner.cleanup()
    return out


def measure(store: str, args: argparse.Namespace, pg: Any, end: datetime) -> dict[str, Any]:
    """Write the year into `store`, open it through the bot's Core, and time the views."""
    from bot.oversight import chain_check
    from bot.service import Core

    with tempfile.TemporaryDirectory(prefix="frbot-bench-console-") as tmp:
        data_dir = Path(tmp)
        env = {"BOT_AUDIT_KEY": KEY}
        started = time.perf_counter()
        if store == "files":
            write_files(data_dir, args.entries, args.days, end)
        else:
            env["BOT_DATABASE_URL"] = pg.database().app_url
            write_database(env["BOT_DATABASE_URL"], args.entries, args.days, end)
        written = time.perf_counter() - started
        settings = replace(Settings(data_dir=data_dir), timezone=TZ)
        core = Core(settings, env)
        try:
            log = core.audit
            started = time.perf_counter()
            check = chain_check.run(log, datetime.now(UTC), "bench leader")  # the leader's check at start
            verify_s = time.perf_counter() - started
            chain_check.save(core.backend.small_records(), check)
            started = time.perf_counter()  # files: builds the offsets and time index (once per process)
            log.find(since=end - timedelta(hours=1), kinds=["search"])
            index_s = time.perf_counter() - started
            sample = next(e for e in log.find(kinds=["search"], since=end - timedelta(days=40)) if e.get("call_number"))
            local_end = end.astimezone(ZoneInfo(TZ)).date()
            month = (local_end - timedelta(days=90), local_end - timedelta(days=61))
            paths = {
                "default": "/console/searches",
                "filtered": f"/console/searches?from={month[0]}&to={month[1]}&requester=U0OFF0007&outcome=candidates",
                "call": f"/console/searches?from=&call_number={sample['call_number']}",
                "every": "/console/searches?from=",
                "export": "/console/searches/export.csv",
                "report": f"/console/report?month={month[0]:%Y-%m}",
                "trail": f"/console/requests/{sample['request_id']}",
            }
            with ThreadPoolExecutor(4) as pool:
                shell = Shell(settings, core, pool, core.backend.probes(), core.backend.dialogs())
                found = asyncio.run(_timed_views(shell, args.runs, paths))
            appends = []
            for _ in range(args.runs):  # what each view's own audit_access entry costs (fsync or commit)
                started = time.perf_counter()
                log.record_access({"id": "U0CHIEF"}, "console_searches", {})
                appends.append((time.perf_counter() - started) * 1000)
            found.update(written_s=written, verify_s=verify_s, index_s=index_s, check_ok=check.ok, entries=check.count,
                         append=appends, rows=found.get("default_rows"))
        finally:
            core.close()
    return found


# ------------------------------------------------------------------------------------------------- the report


def report(args: argparse.Namespace, found: dict[str, dict[str, Any]], pg_line: str) -> bool:
    """Print the table; False when a targeted view misses 300 ms (median) or a chain did not verify."""
    from bench._slack_harness import machine_line

    stores = list(found)
    good = all(found[s]["check_ok"] for s in stores)
    print(f"{args.entries} entries over {args.days} days, {args.runs} timed views each; {pg_line}; "
          f"{machine_line()} at end\n")
    print("| view (server time, ms: median / max; first view apart) | " + " | ".join(stores) + " | target |")
    print("|---|" + "---:|" * len(stores) + "---|")
    labels = {"default": "searches, default (last 30 days)", "filtered": "searches, a month + requester + outcome",
              "call": "searches, one call number, whole log", "every": "searches, every search (?from=)",
              "export": "CSV export of the last 30 days (whole chain checked)",
              "report": "monthly report, a month two months back", "trail": "one request's trail"}
    for view in VIEWS:
        cells = []
        for s in stores:
            ms = found[s][view]
            cells.append(f"{statistics.median(ms):.0f} / {max(ms):.0f} (first {found[s][f'{view}_cold']:.0f})")
        if view in TARGETED:
            ok = all(statistics.median(found[s][view]) <= TARGET_MS for s in stores)
            good &= ok
            target = f"≤ {TARGET_MS:.0f} ms {'✔' if ok else '✘'}"
        else:
            target = "—"
        print(f"| {labels[view]} | " + " | ".join(cells) + f" | {target} |")
    print("| … of which each view's own audit_access append, median / max ms | "
          + " | ".join(f"{statistics.median(found[s]['append']):.0f} / {max(found[s]['append']):.0f}" for s in stores)
          + " | — |")
    print("| the first read of a range, s (files: builds the offsets and time index, once per process) | "
          + " | ".join(f"{found[s]['index_s']:.1f}" for s in stores) + " | — |")
    print("| the leader's full chain check at start, s | "
          + " | ".join(f"{found[s]['verify_s']:.1f} ({found[s]['entries']} entries, "
                       f"{'verify' if found[s]['check_ok'] else 'FAIL'})" for s in stores) + " | — |")
    print("| writing the synthetic year, s | " + " | ".join(f"{found[s]['written_s']:.1f}" for s in stores) + " | — |")
    return good


def main(argv: list[str] | None = None) -> int:
    """Build the log on each store asked for, time the views, print the table; 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="audit entries in the synthetic log")
    parser.add_argument("--days", type=int, default=365, help="days the entries span, ending now")
    parser.add_argument("--runs", type=int, default=15, help="timed views of each targeted page")
    parser.add_argument("--stores", default=",".join(STORES), help=f"comma-separated of {', '.join(STORES)}")
    args = parser.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    if set(stores) - set(STORES):
        parser.error(f"unknown stores {', '.join(sorted(set(stores) - set(STORES)))}")
    end = datetime.now(UTC) - timedelta(minutes=1)
    with contextlib.ExitStack() as stack:
        pg = None
        pg_line = "no PostgreSQL"
        if "postgresql" in stores:
            from bench.store import Postgres

            pg = Postgres()
            stack.callback(pg.close)
            pg_line = pg.describe()
        found = {}
        for store in stores:
            print(f"  {store}: writing {args.entries} entries and timing the views…", file=sys.stderr, flush=True)
            found[store] = measure(store, args, pg, end)
    return 0 if report(args, found, pg_line) else 1


if __name__ == "__main__":
    sys.exit(main())
