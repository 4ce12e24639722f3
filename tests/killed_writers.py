"""The SIGKILL round shared by the fault tests (test_faults, test_journal): start a writer,
let it acknowledge some appends, kill it mid-loop, and count what it acknowledged."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def kill_after_acks(script: Path, args: Sequence[str], env: dict[str, str], rng: np.random.Generator,
                    while_dying: Callable[[int], None] | None = None) -> list[int]:
    """Run ``script args`` (it prints ``READY``, then ``ACK i`` after each append it finished),
    wait for 1-3 acknowledgements, SIGKILL it 0-60 ms later (anywhere in its loop, often inside a
    write) and return every ``i`` it acknowledged.  ``while_dying(pid)`` runs right after the kill,
    before the pipe is drained.  Only whole lines count: the kill can cut the last ``ACK i``
    short; that append did finish, and callers' bounds leave room for it as for the append in
    flight."""
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    acks = [int(proc.stdout.readline().split()[1]) for _ in range(int(rng.integers(1, 4)))]
    time.sleep(float(rng.uniform(0.0, 0.06)))
    os.kill(proc.pid, signal.SIGKILL)
    if while_dying is not None:
        while_dying(proc.pid)
    rest, _ = proc.communicate()
    return acks + [int(line.split()[1]) for line in rest.split("\n")[:-1] if line.startswith("ACK")]
