"""A patient's ID typed on a phone. Case, spaces and dashes
are forgiven when exactly one recorded patient fits; when several do, only
the exact ID opens either (PatientIDs that differ in them are different
people, never merged). The brute-force limits count per account matched,
however its ID was typed."""

import pytest

from authsvc import ingest
from authsvc.models import LoginFailure, Patient
from tests.helpers import fake_study


def record(patient_id, study):
    data = fake_study(patient_id, study, name=f"{study}^PERSON")
    return data, ingest.store_study(data["study_orthanc_id"], data)


def login(app, patient_id, password):
    return app.test_client().post(
        "/api/login", json={"patient_id": patient_id, "password": password}
    )


@pytest.mark.parametrize(
    "typed",
    [
        "V-12345678",
        "v-12345678",
        "V12345678",
        "v12345678",
        " v 1234-5678 ",
        "V\u201312345678",
        "v\u00a012345678",
    ],
)
def test_an_id_typed_in_other_case_or_without_its_dash_logs_in(app, typed):
    data, password = record("V-12345678", "1")
    r = login(app, typed, password)
    assert r.status_code == 200, (typed, r.json)
    assert r.json["patient_id"] == "V-12345678"


@pytest.mark.parametrize("typed", ["12345678", "V-1234567", "W-12345678", "V-123456789", ""])
def test_an_id_with_other_characters_is_never_guessed(app, typed):
    data, password = record("V-12345678", "1")
    assert login(app, typed, password).status_code in (400, 401)


def test_an_ambiguous_id_opens_only_exactly(app):
    (_a, pw_a), (b, pw_b) = record("SP 77", "1"), record("SP  77", "2")
    (_c, pw_c), (_d, pw_d) = record("AB-1", "3"), record("ab1", "4")
    assert Patient.select().count() == 4  # never merged
    for typed, password in [
        ("sp 77", pw_a),
        ("SP77", pw_a),
        ("sp  77", pw_b),
        ("SP77", pw_b),
        ("AB1", pw_c),
        ("ab-1", pw_c),
        ("Ab1", pw_d),
        ("AB 1", pw_d),
    ]:
        assert login(app, typed, password).status_code == 401, typed
    for typed, password in [("SP 77", pw_a), ("SP  77", pw_b), ("AB-1", pw_c), ("ab1", pw_d)]:
        assert login(app, typed, password).status_code == 200, typed
    # Which login each opened: its own study only.
    c_client = app.test_client()
    c_client.post("/api/login", json={"patient_id": "SP  77", "password": pw_b})
    assert {s["orthanc_id"] for s in c_client.get("/api/studies").json["studies"]} == {
        b["study_orthanc_id"]
    }


def test_the_limits_count_per_account_matched(app):
    data, password = record("V-12345678", "1")
    for typed in ["v12345678", "V12345678", "v-12345678", "V 12345678", "v1234-5678"]:
        assert login(app, typed, "wrong password").status_code == 401
    # Five failures however typed: the sixth attempt waits, even with the
    # exact ID and the right password.
    r = login(app, "V-12345678", password)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert login(app, "v12345678", password).status_code == 429
    # The delay runs out (the failures recorded are gone): typed again, in.
    LoginFailure.delete().execute()
    assert login(app, "v12345678", password).status_code == 200


def test_the_id_field_starts_in_capitals_and_says_so(client):
    for lang, hint in [
        ("es", "El teclado empieza en mayúsculas"),
        ("en", "The keyboard starts in capital letters"),
    ]:
        page = client.get(f"/?lang={lang}").get_data(as_text=True)
        field = page[page.index('id="patient_id"') :].split(">")[0]
        assert (
            'autocapitalize="characters"' in field and 'aria-describedby="patient-id-help"' in field
        )
        assert hint in page
