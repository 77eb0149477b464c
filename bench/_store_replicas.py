"""Several replicas on one PostgreSQL, for bench.store (not a benchmark itself): leader failover between processes,
and kill -9 of `python -m bot serve` replicas under load.

failover: two processes each poll `bot.store.pg.leader.Leadership` at the server's beat (bench/_leader.py); the
    leader is killed -9 at a random point of the follower's beat, and the time from the kill to the follower's
    first poll that leads is taken (CLOCK_MONOTONIC, one clock for every process). A new follower replaces the
    dead process each round.
kills: two replicas (tests/slack/replicas.py: separate `python -m bot serve` processes, each with its own data
    dir, one database, one BOT_AUDIT_KEY) behind a load balancer played here: searches start one after the other,
    the upload sent to one replica and the "I attest" reply to the other, in turn. Slack's part: an event whose
    POST fails or is not answered within 3 s is delivered again (X-Slack-Retry-Num, the same event id) to a
    replica that runs. In turn, each replica is killed -9 just after a search was attested on it, and started
    again on its own data dir; when the killed one led, the time until the other's /healthz says it leads is
    taken too. Afterwards every request should end (the chequered flag, or the warning mark, on its upload) with
    one result post in its thread, one search entry in the audit log, and no post_id posted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench._slack_harness import ROOT, bot_post, enroll_gallery, faces_root, payload, upload_text, workspace
from tests.slack.conftest import CAD_BOT, CAD_USER, CALL, CASE, CASE_LISTED, DISPATCH, OFFICER
from tests.slack.double import SlackDouble
from tests.slack.replicas import Replica, spawn, until_healthy
from tests.slack.signing import event_body, new_event_id, post

PHOTO = "people/obama/obama3.jpg"  # small: the load is the requests, not one photo's pixels
SLACK_TIMEOUT_S = 3.0  # Slack counts an event as failed when the app has not answered within 3 s
SLACK_RETRIES = 3  # and delivers it again, up to 3 times
ENDED = ("checkered_flag", "warning")  # the marks a request's upload gets when it ends (bot.slack.flow.effects)


# ------------------------------------------------------------------------------------------------ failover


async def _leader_process(url: str, name: str, every: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bench._leader", url, name, str(every),
                                                cwd=ROOT, stdout=asyncio.subprocess.PIPE)


async def _poll_line(proc: asyncio.subprocess.Process, timeout: float) -> tuple[str, float]:
    """('lead' | 'follow', when) of the process's next poll."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError("a leadership process ended")
    kind, at = line.decode().split()
    return kind, float(at)


async def failover(url: str, rounds: int, every: float) -> tuple[list[float], int]:
    """Seconds from kill -9 of the leading process to the other's first poll that leads, one per round; and how
    many polls said "lead" while another process still led (two leaders at once: should be 0)."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(name: str, want: str) -> asyncio.subprocess.Process:
        proc = await _leader_process(url, name, every)
        procs.append(proc)
        kind, _ = await _poll_line(proc, 30 + every)
        if kind != want:
            raise RuntimeError(f"leadership process {name} should {want} at its first poll, it did {kind}")
        return proc

    times, overlaps = [], 0
    try:
        leader = await start("a", "lead")
        follower = await start("b", "follow")
        for i in range(rounds):
            await asyncio.sleep(random.uniform(0, every))  # a death anywhere in the follower's beat
            killed = time.monotonic()
            leader.kill()  # SIGKILL: no unlock, no goodbye; its session ends with its socket
            await leader.wait()
            while True:
                kind, at = await _poll_line(follower, 60 + every)
                if kind == "lead":
                    overlaps += at < killed
                    break
            times.append(at - killed)
            leader, follower = follower, await start(f"r{i}", "follow")
        return times, overlaps
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# ------------------------------------------------------------------------------------------- kill -9 of replicas


@dataclass
class Request:
    """One search the load started: where its events went and what became of them."""

    n: int
    thread_ts: str = ""
    upload_to: str | None = None
    attest_to: str | None = None
    attested_at: float = 0.0
    problem: str = ""  # why it stopped before the attestation (never for a request that was attested)


@dataclass
class KillReport:
    """What the kill run counted."""

    requests: list[Request]
    kills: int
    in_flight_at_kill: list[int]  # searches attested on the victim and not ended, at each kill
    restart_s: list[float]  # kill -9 to the restarted replica's /healthz answering
    takeover_s: list[float]  # kill -9 of the leader to the other's /healthz saying it leads
    not_ended: list[int]  # request numbers with neither mark on their upload (attested or stopped before)
    results_twice: list[int]  # request numbers with more than one result post
    searches_twice: int  # request ids with more than one search entry in the audit log
    posts_twice: int  # post_ids posted more than once
    retries: int  # deliveries Slack had to repeat (a replica dead or not answering in 3 s)
    audit_ok: bool
    audit_entries: int
    seconds: float
    drain_s: float  # from the last kill's restart to the last request's end
    extra: dict[str, Any] = field(default_factory=dict)


class Fleet:
    """Replicas on one database, the Slack double, and Slack's delivery (with its retries) between them."""

    def __init__(self, double: SlackDouble, http: aiohttp.ClientSession, root: Path, store_env: Mapping[str, str]):
        self.double, self.http, self.root, self.store_env = double, http, root, store_env
        self.replicas: dict[str, Replica] = {}
        self.retries = 0
        self.attested: dict[str, asyncio.Event] = {}

    async def start(self, name: str) -> float:
        """Start (or restart, on its data dir) replica `name`; seconds until its /healthz answered."""
        t0 = time.monotonic()
        self.replicas[name] = await spawn(self.root, name, self.double.base_url, self.store_env)
        self.attested.setdefault(name, asyncio.Event())
        await until_healthy(self.http, self.replicas[name])
        return time.monotonic() - t0

    def running(self) -> list[str]:
        return [n for n, r in self.replicas.items() if not r.stopped]

    async def leads(self, name: str) -> bool:
        health = await self.replicas[name].health(self.http)
        return bool(health and health.get("leader"))

    async def deliver(self, body: bytes, prefer: str) -> str | None:
        """POST a signed event as Slack does: to `prefer`, then again (same event id) to a running replica when it
        failed or took over 3 s, up to 3 times. The replica that answered 200, or None (Slack gave up)."""
        for attempt in range(SLACK_RETRIES + 1):
            running = self.running()
            name = prefer if attempt == 0 or not running else running[attempt % len(running)]
            try:
                async with asyncio.timeout(SLACK_TIMEOUT_S):
                    reply = await post(self.http, self.replicas[name].events_url, body,
                                       retry_num=attempt or None, retry_reason="http_timeout" if attempt else None)
                if reply.status == 200:
                    return name
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            self.retries += 1
            await asyncio.sleep(0.5)
        return None

    async def search(self, n: int, first: str, photo: tuple[str, bytes]) -> Request:
        """One request: the upload (call number, purpose and justification in its text) to `first`, the "I attest"
        reply to the other replica once the attestation prompt is posted."""
        req = Request(n)
        name, data = photo
        file = self.double.add_file(f"F{n:07d}", name, "image/jpeg", data, OFFICER)
        upload = self.double.add_message(CASE, upload_text(CALL), user=OFFICER, files=[file])
        req.thread_ts = upload["ts"]
        req.upload_to = await self.deliver(event_body(upload, new_event_id()), first)
        if req.upload_to is None:
            req.problem = "upload undelivered"
            return req
        try:
            await self.double.wait_for(bot_post("card", upload["ts"], step="attestation"), ok=True, timeout=120)
        except TimeoutError:
            req.problem = "no attestation prompt"
            return req
        reply = self.double.add_message(CASE, "I attest", user=OFFICER, thread_ts=upload["ts"])
        others = [r for r in self.running() if r != req.upload_to] or self.running() or [req.upload_to]
        req.attest_to = await self.deliver(event_body(reply, new_event_id()), others[0])
        if req.attest_to is None:
            req.problem = "attestation undelivered"
            return req
        req.attested_at = time.monotonic()
        self.attested[req.attest_to].set()
        return req

    def ended(self) -> set[str]:
        """Thread ts of the uploads marked as ended."""
        return {c.params.get("timestamp") for c in self.double.call_log("reactions.add")
                if c.ok and c.params.get("name") in ENDED}

    def result_posts(self) -> Counter[str]:
        """Result posts per thread."""
        return Counter(c.params.get("thread_ts") for c in self.double.call_log("chat.postMessage")
                       if c.ok and payload(c).get("kind") == "result")

    async def close(self) -> None:
        for replica in self.replicas.values():
            if replica.proc.returncode is None:
                await replica.stop()


async def _load(fleet: Fleet, stop: asyncio.Event, every: float, photo: tuple[str, bytes],
                started: list[asyncio.Task]) -> None:
    """Start a search every `every` seconds, on the running replicas in turn, until `stop`."""
    n = 0
    while not stop.is_set():
        running = fleet.running()
        if running:
            started.append(asyncio.create_task(fleet.search(n, running[n % len(running)], photo)))
            n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def _so_far(started: list[asyncio.Task]) -> list[Request]:
    """The requests whose attestation has been delivered, or which stopped before it."""
    return [t.result() for t in started if t.done() and not t.cancelled() and t.exception() is None]


def _dialog_state(dialog: Any) -> str:
    """Where a request's dialog stands in the database: its step and each image's status (and outcome)."""
    if dialog is None:
        return "no dialog in the database"
    images = ", ".join(f"{i.request_id} {i.status}{f' {i.outcome}' if i.outcome else ''}" for i in dialog.images)
    return f"dialog {dialog.step.value if hasattr(dialog.step, 'value') else dialog.step}: {images}"


@dataclass
class _Run:
    """What the kill loop saw as it went."""

    started: list[asyncio.Task] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)
    takeover_s: list[float] = field(default_factory=list)
    kill_times: list[tuple[float, str, bool]] = field(default_factory=list)
    drained: float = 0.0


async def _victim(fleet: Fleet, names: list[str], k: int) -> str:
    """The leader on even kills, the other replica on odd ones (whoever survives a leader's death leads after)."""
    leading = [n for n in names if await fleet.leads(n)]
    if len(leading) != 1:
        return names[k % 2]
    return leading[0] if k % 2 == 0 else next(n for n in names if n != leading[0])


async def _kill_loop(fleet: Fleet, run: _Run, *, kills: int, every: float, drain_s: float,
                     photo: tuple[str, bytes], progress: bool) -> None:
    await fleet.start("replica-a")
    await fleet.start("replica-b")
    names = ["replica-a", "replica-b"]
    stop = asyncio.Event()
    loader = asyncio.create_task(_load(fleet, stop, every, photo, run.started))
    try:
        for k in range(kills):
            victim = await _victim(fleet, names, k)
            survivor = next(n for n in names if n != victim)
            fleet.attested[victim].clear()
            await asyncio.wait_for(fleet.attested[victim].wait(), 300)  # a search just began on it
            await asyncio.sleep(random.uniform(0, 1.0))  # anywhere in its download, analysis, search, post
            led = await fleet.leads(victim)
            done = fleet.ended()
            run.in_flight.append(sum(1 for r in _so_far(run.started) if r.attest_to == victim
                                     and r.thread_ts not in done))
            killed = time.monotonic()
            run.kill_times.append((killed, victim, led))
            fleet.replicas[victim].kill9()
            await fleet.replicas[victim].proc.wait()
            if led:
                while not await fleet.leads(survivor):
                    await asyncio.sleep(0.1)
                run.takeover_s.append(time.monotonic() - killed)
            await fleet.start(victim)
            run.restart_s.append(time.monotonic() - killed)
            if progress:
                print(f"  kill {k + 1}/{kills}: {victim}{' (leader)' if led else ''}, {run.in_flight[-1]} searches "
                      f"of its own in flight; back in {run.restart_s[-1]:.1f} s; {len(run.started)} requests so far",
                      file=sys.stderr, flush=True)
    finally:
        stop.set()
        await loader
    requests = list(await asyncio.gather(*run.started))
    last_kill = time.monotonic()
    attested = {r.thread_ts for r in requests if r.attest_to}
    while not attested <= fleet.ended() and time.monotonic() - last_kill < drain_s:
        await asyncio.sleep(0.5)
    run.drained = time.monotonic() - last_kill


def _gallery_into(store_env: Mapping[str, str], root: Path) -> None:
    """The end-to-end tests' gallery, enrolled with one face worker and copied into the database."""
    from bot.config import ImageSettings
    from bot.faces.engine import FaceEngine

    engine = FaceEngine(ImageSettings(), workers=1)
    engine.start()
    try:
        enroll_gallery(faces_root(), engine, root, store_env)
    finally:
        engine.close()
    shutil.rmtree(root, ignore_errors=True)


async def kills(store_env: Mapping[str, str], connect: Callable[[], Any], *, kills: int, every: float,
                drain_s: float, progress: bool = True) -> KillReport:
    """Two replicas under load, `kills` kill -9 of one of them in turn, each restarted; see the module's text.
    `connect` reads the database afterwards (a pool's connection). When a request did not end, the replicas' data
    dirs and logs are kept (the path in `extra["kept"]`)."""
    from bot.store.pg.audit import PgAuditLog
    from bot.store.pg.dialogs import PgDialogStore

    faces = faces_root()
    photo = (Path(PHOTO).name, (faces / PHOTO).read_bytes())
    t_start = time.monotonic()
    run = _Run()
    tmp = Path(tempfile.mkdtemp(prefix="frbot-bench-replicas-"))
    _gallery_into(store_env, tmp / "gallery")
    async with SlackDouble() as double, aiohttp.ClientSession() as http:
        workspace(double)
        double.add_channel(CASE_LISTED, "robbery-task-force", is_private=True)
        double.add_history(DISPATCH, [{"text": f"CAD {CALL} incident", "user": CAD_USER, "bot_id": CAD_BOT}])
        fleet = Fleet(double, http, tmp, store_env)
        try:
            await _kill_loop(fleet, run, kills=kills, every=every, drain_s=drain_s, photo=photo, progress=progress)
        finally:
            await fleet.close()
        requests = _so_far(run.started)
        ended, results = fleet.ended(), fleet.result_posts()
        ids = Counter(payload(c)["post_id"] for c in double.call_log("chat.postMessage")
                      if c.ok and "post_id" in payload(c))
    lost = [r for r in requests if r.thread_ts not in ended]
    if not lost:
        shutil.rmtree(tmp, ignore_errors=True)
    audit_log = PgAuditLog(connect, key=store_env["BOT_AUDIT_KEY"].encode())
    searches = Counter(e.get("request_id") for e in audit_log.entries() if e.get("kind") == "search")
    outcomes = Counter(e.get("outcome") for e in audit_log.entries() if e.get("kind") == "search")
    verified = audit_log.verify()
    dialogs = {d.thread_ts: d for d in PgDialogStore(connect).all()}
    return KillReport(
        requests=requests, kills=kills, in_flight_at_kill=run.in_flight, restart_s=run.restart_s,
        takeover_s=run.takeover_s, not_ended=[r.n for r in lost],
        results_twice=[r.n for r in requests if results[r.thread_ts] > 1],
        searches_twice=sum(1 for c in searches.values() if c > 1), posts_twice=sum(1 for c in ids.values() if c > 1),
        retries=fleet.retries, audit_ok=verified.ok, audit_entries=verified.count,
        seconds=time.monotonic() - t_start, drain_s=run.drained,
        extra={"kills": [(at - t_start, victim, led) for at, victim, led in run.kill_times],
               "lost": [(r.n, r.thread_ts, r.upload_to, r.attest_to, r.attested_at - t_start if r.attested_at else None,
                         r.problem, _dialog_state(dialogs.get(r.thread_ts))) for r in lost],
               "outcomes": dict(outcomes), "results": sum(results.values()),
               "kept": str(tmp) if lost else None},
    )
