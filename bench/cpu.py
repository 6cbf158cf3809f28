"""CPU time accounting from /proc: how much CPU each side used during a run,
and how busy the whole machine was (others share it)."""

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid):
    """User + system CPU seconds of a process (all its threads); 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid):
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def tree(pid):
    """A process and its children (gunicorn's workers, nginx's workers)."""
    return [pid] + children(pid)


def machine():
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


class Meter:
    """CPU seconds used by named groups of processes between start and stop,
    and the machine's busy share (in cores) meanwhile."""

    def __init__(self, groups):
        self.groups = groups  # name -> list of pids

    def __enter__(self):
        self.before = {n: sum(process_seconds(p) for p in pids) for n, pids in self.groups.items()}
        self.machine_before = machine()
        return self

    def __exit__(self, *exc):
        self.used = {
            n: sum(process_seconds(p) for p in pids) - self.before[n]
            for n, pids in self.groups.items()
        }
        busy0, total0 = self.machine_before
        busy1, total1 = machine()
        cores = os.cpu_count() or 1
        self.machine_busy_cores = (busy1 - busy0) / max(1, total1 - total0) * cores
        return False
