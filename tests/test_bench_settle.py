"""B2 measures decisions once the first pass's audit entries are written:
the workers' writer threads append them a moment after the decisions, and
a backlog still draining during a measured round is a cost of the first
pass, not of the decisions the round asks (bench/b2.py's settle_audit)."""

from bench import b2


class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


def test_it_waits_until_the_count_stops_growing():
    clock = Clock()
    counts = iter([10, 40, 90, 120, 120, 120, 120, 120, 120, 120, 120, 120])
    out = b2.settle_audit(
        lambda: next(counts), print, quiet=1.0, poll=0.25, now=clock.now, sleep=clock.sleep
    )
    assert out["entries"] == 120
    assert out["settled"] is True
    # Three polls to reach 120, then quiet for 1 s (4 polls) before it stops.
    assert out["waited_s"] == 1.75


def test_it_gives_up_after_its_limit_and_says_so():
    clock = Clock()
    grow = iter(range(0, 10_000, 7))
    out = b2.settle_audit(
        lambda: next(grow), print, quiet=1.0, poll=0.25, limit=5.0, now=clock.now, sleep=clock.sleep
    )
    assert out["settled"] is False
    assert 5.0 <= out["waited_s"] <= 5.25


def test_a_count_that_fails_is_reported_not_fatal():
    def broken():
        raise RuntimeError("no such table")

    out = b2.settle_audit(broken, print, now=Clock().now, sleep=Clock().sleep)
    assert out["settled"] is False and "no such table" in out["error"]
