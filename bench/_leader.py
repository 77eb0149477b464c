"""One replica's leadership, alone in its process, for bench.store's failover measure (not a benchmark itself).

    python -m bench._leader URL NAME EVERY_S

Polls `bot.store.pg.leader.Leadership` every EVERY_S seconds, as the server's leadership job does (sleep, then
poll), and prints one line a poll: `lead <time.monotonic()>` or `follow <time.monotonic()>`. CLOCK_MONOTONIC is
one clock for every process on the machine, so the parent compares these times with its own.
"""

from __future__ import annotations

import sys
import time

from bot.store.pg.leader import Leadership


def main(argv: list[str]) -> int:
    """Poll for ever (the parent kills this process)."""
    url, name, every = argv[0], argv[1], float(argv[2])
    leadership = Leadership(url, name, keepalive_s=every)
    while True:
        leads = leadership.poll()
        print(f"{'lead' if leads else 'follow'} {time.monotonic():.6f}", flush=True)
        time.sleep(every)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
