"""`python -m refunds.orphans PARENT_PID COMMAND ARGS...`: become COMMAND, bound to die with
PARENT_PID.

`refunds dev` starts every component through this, so that however the supervisor ends —
SIGKILL included, when it has no chance to stop anyone — the kernel sends each component
SIGTERM (Linux's PR_SET_PDEATHSIG, which survives the exec below) and the next `make run`
finds its ports free. Where prctl does not exist the command simply runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def bind_to_parent(parent_pid: int) -> None:
    """Ask for SIGTERM when the parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The parent may have died between our fork and the prctl: then nobody would signal us.
    if os.getppid() != parent_pid:
        sys.exit(f"refunds.orphans: parent {parent_pid} is gone; not starting")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit("usage: python -m refunds.orphans PARENT_PID COMMAND [ARGS...]")
    bind_to_parent(int(argv[0]))
    os.execvp(argv[1], argv[1:])  # noqa: S606 - the supervisor's own command line, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
