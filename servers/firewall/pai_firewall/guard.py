"""The rollback guard: ``python -m pai_firewall.guard <data_dir> <change_id>``.

Started by the server, in its own session, before a change is applied. It sleeps until the
pending change's deadline (re-reading it: the server extends it once the self-check passed),
then under the state lock rolls the change back unless it was confirmed or rolled back already.
It exits as soon as the change is no longer pending; a rollback that fails is retried a few
times, and the pending file stays for the next server start. See :mod:`pai_firewall.deadman`.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from pai_firewall.deadman import read_pending, roll_back_pending, state_lock

__all__ = ["main"]

log = logging.getLogger("pai_firewall.guard")
POLL_S = 0.2
MAX_ATTEMPTS = 5  # a rollback nft refused is retried, RETRY_S apart
RETRY_S = 2.0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s guard %(message)s")
    data_dir, change_id = Path(argv[0]), argv[1]
    failures = 0
    while True:
        pending = read_pending(data_dir)
        if pending is None or pending.get("change_id") != change_id:
            return 0
        wait = float(pending["deadline"]) - time.time()
        if wait > 0:
            time.sleep(min(wait, POLL_S))
            continue
        with state_lock(data_dir):
            pending = read_pending(data_dir)
            if pending is None or pending.get("change_id") != change_id:
                return 0
            if time.time() < float(pending["deadline"]):
                continue  # extended while we waited for the lock
            entry = roll_back_pending(data_dir, pending, "not confirmed in time")
        log.info("change %s: %s", change_id, entry["result"])
        if entry["result"] != "failed":
            return 0
        failures += 1
        if failures >= MAX_ATTEMPTS:  # the pending file stays: the next start tries again
            return 1
        time.sleep(RETRY_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
