"""The guessing limits hold under concurrent attempts (the check
and the recording of an attempt are one step), and an attack from one
address does not lock that address's other users out."""

import datetime
import threading

import pytest

from authsvc import ingest
from authsvc.db import database
from authsvc.models import LoginFailure
from tests.helpers import fake_study


@pytest.fixture
def patients(app):
    out = {}
    for pid, n in (("P-1", "1"), ("P-2", "2")):
        data = fake_study(pid, n)
        out[pid] = ingest.store_study(data["study_orthanc_id"], data)
    return out


def attempt(client, password, pid="P-1", address="10.0.0.1"):
    return client.post(
        "/api/login",
        json={"patient_id": pid, "password": password},
        headers={"X-Forwarded-For": address},
    )


def age_failures(seconds):
    for row in LoginFailure.select():
        LoginFailure.update(at=row.at - datetime.timedelta(seconds=seconds)).where(
            LoginFailure.id == row.id
        ).execute()


def in_parallel(app, calls):
    """Run each call (client -> response) in its own thread, all released at
    once; the status codes."""
    barrier = threading.Barrier(len(calls))
    codes = [None] * len(calls)

    def run(i, call):
        database.connect(reuse_if_open=True)
        try:
            client = app.test_client()
            barrier.wait()
            codes[i] = call(client).status_code
        finally:
            database.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def test_sixteen_parallel_guesses_on_one_account_evaluate_at_most_five(app, patients):
    codes = in_parallel(
        app,
        [lambda c, n=n: attempt(c, f"wrong-guess-{n}", address=f"10.1.0.{n}") for n in range(16)],
    )
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) == 5, codes  # 5 free failures, then a delay: evaluated no more
    assert LoginFailure.select().where(LoginFailure.key == "patient:p-1").count() == 5


def test_when_a_delay_runs_out_sixteen_parallel_guesses_evaluate_one(app, patients):
    client = app.test_client()
    for n in range(5):
        assert attempt(client, "wrong-guess", address=f"10.6.0.{n}").status_code == 401
    age_failures(3)  # the delay after the 5th failure (2 s) is over: one attempt may come
    codes = in_parallel(
        app,
        [lambda c, n=n: attempt(c, f"wrong-guess-{n}", address=f"10.6.1.{n}") for n in range(16)],
    )
    assert sorted(codes) == [401] + [429] * 15, codes


def test_sixteen_parallel_guesses_from_one_address_evaluate_at_most_its_limit(app, patients):
    client = app.test_client()
    for n in range(12):  # 12 accounts failed from this address: 8 left of its 20
        assert attempt(client, "wrong-guess", pid=f"X{n}", address="10.2.0.1").status_code == 401
    codes = in_parallel(
        app,
        [
            lambda c, n=n: attempt(c, "wrong-guess", pid=f"Y{n}", address="10.2.0.1")
            for n in range(16)
        ],
    )
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) == 8, codes


def test_a_successful_login_in_a_burst_does_not_count_as_a_failure(app, patients):
    codes = in_parallel(
        app, [lambda c, n=n: attempt(c, patients["P-1"], address="10.3.0.1") for n in range(4)]
    )
    assert codes == [200] * 4
    assert LoginFailure.select().count() == 0


def test_an_attack_on_one_account_does_not_lock_its_address_out(app, patients):
    """25 failures on P-1 from a ward's address (waiting out each delay): the
    address has tried one account, and P-2 on the same address gets in."""
    client = app.test_client()
    for _ in range(25):
        assert attempt(client, "wrong-guess", address="10.4.0.1").status_code == 401
        age_failures(61)
    assert attempt(client, "wrong-guess", address="10.4.0.1").status_code == 401
    assert attempt(client, "wrong-guess", address="10.4.0.1").status_code == 429  # P-1 waits
    assert attempt(client, patients["P-2"], pid="P-2", address="10.4.0.1").status_code == 200


def test_a_patient_gets_in_from_a_locked_address_after_the_accounts_delay(app, patients):
    """An address that failed on 20 accounts must wait before trying another;
    the patient of one of them, whose own delay is over, gets in from it."""
    client = app.test_client()
    for _ in range(5):
        assert attempt(client, "wrong-guess", address="10.5.0.1").status_code == 401
    age_failures(3)  # P-1's delay (2 s after its 5th failure) is over
    for n in range(19):
        assert attempt(client, "wrong-guess", pid=f"Z{n}", address="10.5.0.1").status_code == 401
    assert attempt(client, "wrong-guess", pid="Z-new", address="10.5.0.1").status_code == 429
    assert attempt(client, patients["P-1"], address="10.5.0.1").status_code == 200
    assert attempt(client, "wrong-guess", pid="Z-new", address="10.5.0.1").status_code == 429
