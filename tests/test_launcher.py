"""`make run` itself (python -m deploy.trial run), as a subprocess on a
temporary data folder: its start message and its
supervision: a child killed with SIGKILL is started again within
10 s, alone; the others keep their PIDs and DICOM keeps being accepted."""

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.launcher import Launcher, children


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    run = Launcher(tmp_path_factory.mktemp("launcher") / "data")
    yield run
    run.stop()
    if run.proc.returncode not in (0, None):
        print(run.text)


@pytest.mark.stack
def test_start_message_warns_of_a_loopback_public_url(launcher):
    assert "WARNING: public_url is http://127.0.0.1:" in launcher.text
    assert str(launcher.data / "site.json") in launcher.text


@pytest.mark.stack
@pytest.mark.parametrize("victim", ["authsvc", "nginx", "orthanc"])
def test_a_killed_child_comes_back_alone(launcher, victim):
    before = children(launcher.proc.pid)
    assert set(before) == {"orthanc", "authsvc", "nginx"}, (before, launcher.text)
    assert launcher.echo()
    os.kill(before[victim], signal.SIGKILL)
    killed_at = time.monotonic()
    if victim != "orthanc":
        assert launcher.echo()  # DICOM is still accepted meanwhile
    back = wait_for(
        lambda: children(launcher.proc.pid).get(victim) not in (None, before[victim])
        and launcher.answers(victim),
        10,
        interval=0.1,
        what=f"{victim} started again",
    )
    elapsed = time.monotonic() - killed_at
    after = children(launcher.proc.pid)
    assert back and after[victim] != before[victim]
    assert {n: p for n, p in after.items() if n != victim} == {
        n: p for n, p in before.items() if n != victim
    }, "the others kept running"
    assert launcher.proc.poll() is None
    assert all(launcher.answers(name) for name in before)
    assert launcher.echo()
    # The launcher says so once its own check of the child passed, which may
    # come a moment after the test's own did.
    wait_for(
        lambda: f"{victim} is running again" in launcher.text,
        10,
        interval=0.1,
        what=f"the launcher saying {victim} is running again",
    )
    assert f"{victim} stopped" in launcher.text
    print(f"{victim} back after {elapsed:.1f} s")


@pytest.mark.stack
def test_sigterm_stops_every_child(tmp_path):
    run = Launcher(tmp_path / "data")
    pids = children(run.proc.pid)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists() or (
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        )


class _Proc:
    def __init__(self, pid):
        self.pid, self.alive = pid, True

    def poll(self):
        return None if self.alive else -9


class _FakeStack:
    """Stack's interface to Supervisor, with children that die on demand."""

    logs = Path("/nonexistent")

    def __init__(self):
        self.procs = {n: _Proc(n) for n in ("orthanc", "authsvc", "nginx")}
        self.starts = []
        self.fail = False

    def reap(self, name):
        return self.procs.pop(name, None) and -9

    def starter(self, name):
        def start():
            self.starts.append(name)
            if self.fail:
                raise RuntimeError("port in use")
            self.procs[name] = _Proc(name)

        return start


def test_restarts_back_off_and_start_over_after_a_long_run():
    from io import StringIO

    from deploy.trial import Supervisor

    now = [0.0]
    stack = _FakeStack()
    sup = Supervisor(stack, clock=lambda: now[0], out=StringIO())

    def kill_and_time_restart(name):
        stack.procs[name].alive = False
        sup.tick()  # noticed
        died = now[0]
        while name not in stack.procs:
            now[0] += 0.25
            sup.tick()
        return now[0] - died

    assert kill_and_time_restart("authsvc") == 1.0
    assert kill_and_time_restart("authsvc") == 2.0
    assert kill_and_time_restart("authsvc") == 4.0
    assert stack.starts == ["authsvc"] * 3  # the others never restarted
    # A start that fails is tried again, later each time.
    stack.fail = True
    stack.procs["nginx"].alive = False
    sup.tick()
    attempts = []
    while len(attempts) < 3:
        now[0] += 0.25
        before = len(stack.starts)
        sup.tick()
        if len(stack.starts) > before:
            attempts.append(now[0])
    assert attempts[2] - attempts[1] > attempts[1] - attempts[0] >= 2.0
    stack.fail = False
    while "nginx" not in stack.procs:
        now[0] += 0.25
        sup.tick()
    # Running long enough: the next death waits the first delay again.
    now[0] += Supervisor.RESTART_RESET_SECONDS + 1
    sup.tick()
    assert kill_and_time_restart("authsvc") == 1.0
    assert kill_and_time_restart("nginx") == 1.0
