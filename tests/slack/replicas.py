"""Replicas for the tests of several servers on one database (CONTRACTS ### 13): each a separate
`python -m bot serve` process with its own data dir (spool, matrix cache, lock), sharing the test's database, the
Slack double and one BOT_AUDIT_KEY. The harness sends to whichever replica is its `target`."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .conftest import CASE_LISTED, DISPATCH, GROUP, GUEST, OFFICER, Harness
from .signing import SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0  # a replica loads its face models before it answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Replica:
    """One running `python -m bot serve` process."""

    name: str
    proc: asyncio.subprocess.Process
    base: str
    local_base: str
    log: Path
    stopped: bool = False

    @property
    def events_url(self) -> str:
        return f"{self.base}/slack/events"

    async def health(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        """Its local /healthz, or None while it does not answer."""
        try:
            async with http.get(f"{self.local_base}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                return await resp.json() if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError):
            return None

    def kill9(self) -> None:
        """As a machine dying: no shutdown, no lease released, no leadership given up."""
        self.proc.send_signal(signal.SIGKILL)
        self.stopped = True

    async def stop(self) -> None:
        """SIGTERM, as an orderly shutdown (SIGKILL after 30 s)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.stopped = True


def write_config(path: Path) -> Path:
    """The settings the in-process test servers get (conftest.bot_settings), as the TOML a replica reads."""
    path.write_text(
        "[slack]\n"
        'case_channel_prefix = "case-"\n'
        f'case_channels = ["{CASE_LISTED}"]\n'
        f'dispatch_channel = "{DISPATCH}"\n'
        f'requesters = ["{OFFICER}", "{GUEST}"]\n'
        f'requester_groups = ["{GROUP}"]\n'
        'file_hosts = ["127.0.0.1"]\n'
        "dialog_timeout_minutes = 5\n"
        "[faces]\nworkers = 1\n"
        '[server]\nhost = "127.0.0.1"\nspool_mb = 1\n',
        encoding="utf-8")
    return path


async def spawn(root: Path, name: str, slack_url: str, store_env: Mapping[str, str]) -> Replica:
    """Start `python -m bot serve` as replica `name`, its data dir, settings and log under root/name (kept across
    restarts, as a machine's disk is), on fresh ports; does not wait for it. Also for bench/store.py."""
    root = root / name
    root.mkdir(parents=True, exist_ok=True)
    port, local = free_port(), free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": slack_url, "PORT": str(port), "LOCAL_PORT": str(local),
           "BOT_DATA_DIR": str(root / "data"), "BOT_CONFIG": str(write_config(root / "settings.toml")),
           "BOT_REPLICA_ID": name, "LOG_LEVEL": "INFO", **store_env}
    env.pop("SLACK_APP_TOKEN", None)
    log = root / "server.log"
    out = await asyncio.to_thread(open, log, "ab")
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", env=env, cwd=ROOT,
                                                    stdout=out, stderr=out)
    finally:
        out.close()  # the process holds its own copy
    return Replica(name, proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{local}", log)


async def start_replica(harness: Harness, name: str, *, wait: bool = True) -> Replica:
    """Start replica `name` on the harness's database with its own data dir; waits until its local /healthz
    answers (it has connected to Slack and the database)."""
    replica = await spawn(harness.data_dir.parent, name, harness.slack.base_url, harness.store_env)
    harness.bots.append(replica)  # type: ignore[arg-type] - stopped with the harness
    if wait:
        await until_healthy(harness.http, replica)
    return replica


async def until_healthy(http: aiohttp.ClientSession, replica: Replica) -> dict[str, Any]:
    """Its /healthz once it answers (AssertionError with its log when it never does)."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if replica.proc.returncode is not None:
            raise AssertionError(f"{replica.name} exited {replica.proc.returncode}:\n{replica.log.read_text()}")
        health = await replica.health(http)
        if health is not None:
            return health
        await asyncio.sleep(0.2)
    raise AssertionError(f"{replica.name} never answered:\n{replica.log.read_text()[-4000:]}")


async def leaders(harness: Harness, replicas: list[Replica]) -> list[str]:
    """The names of the replicas whose /healthz says they lead."""
    found = []
    for replica in replicas:
        health = await replica.health(harness.http)
        if health and health.get("leader"):
            found.append(replica.name)
    return found
