"""The decisions benchmark keeps its figure clear of a full hour: at each hour
every (login, study) asked about gets its audit entry again, which is the
first pass's cost, not the figure's (a PostgreSQL round once crossed 14:00)."""

from bench import b2


def test_a_world_that_fits_before_the_hour_starts_at_once():
    slept = []
    waited = b2.clear_of_the_hour(126, print, now=lambda: 5 * 3600 + 600, sleep=slept.append)
    assert waited == 0.0 and slept == []


def test_a_world_that_would_cross_the_hour_waits_past_it():
    slept = []
    start = 6 * 3600 - 50
    waited = b2.clear_of_the_hour(126, print, now=lambda: start, sleep=slept.append)
    assert slept == [waited] and (start + waited) % 3600 < 10
