"""Slips in batches, in-process (Flask's test client, a real SQLite file): the batch of
slips follows the dashboard's filters and prints only pending slips; marking
a batch printed wipes each display copy, except where the password changed
meanwhile (fail closed: listed, not wiped); "today" is the site's day."""

import datetime

from authsvc import ingest
from authsvc.models import Patient, Study
from tests.helpers import fake_study
from tests.pages_world import site, staff_client, world  # noqa: F401 (fixtures)


def test_the_batch_prints_the_pending_slips_of_the_filters(site, world):
    c = staff_client(site)
    page = c.get("/staff/batch-slips").get_data(as_text=True)
    assert page.count('class="slip layout-a6"') == 2
    assert 'id="slip-1"' in page and 'id="slip-2"' in page and 'id="slip"' not in page
    # The search narrows it, as on the dashboard.
    page = c.get("/staff/batch-slips?q=P-2&layout=thermal").get_data(as_text=True)
    assert page.count('class="slip layout-thermal"') == 1 and "P-2" in page and "P-1" not in page
    # A printed slip is not pending any more.
    row = next(r for r in c.get("/staff/api/studies").json["studies"] if r["patient_id"] == "P-1")
    assert (
        c.post(
            "/staff/api/patients/P-1/printed", json={"password_set_at": row["password_set_at"]}
        ).status_code
        == 200
    )
    assert c.get("/staff/batch-slips").get_data(as_text=True).count('class="slip ') == 1
    assert c.get("/staff/api/studies?pending=1").json["studies"][0]["patient_id"] == "P-2"


def test_marking_a_batch_printed_fails_closed_on_a_changed_password(site, world):
    c = staff_client(site)
    rows = {r["patient_id"]: r for r in c.get("/staff/api/studies").json["studies"]}
    stale = rows["P-2"]["password_set_at"]
    assert c.post("/staff/api/patients/P-2/reissue", json={}).status_code == 200
    r = c.post(
        "/staff/api/slips/printed",
        json={
            "slips": [
                {
                    "patient_id": "P-1",
                    "password_set_at": rows["P-1"]["password_set_at"],
                    "language": "en",
                },
                {"patient_id": "P-2", "password_set_at": stale},
                {"patient_id": "NOPE", "password_set_at": stale},
            ]
        },
    )
    assert r.status_code == 200
    assert (
        r.json["printed"] == ["P-1"] and r.json["changed"] == ["P-2", "NOPE"] and not r.json["ok"]
    )
    assert Patient.get(Patient.patient_id == "P-1").display_password is None
    assert Patient.get(Patient.patient_id == "P-1").slip_language == "en"
    assert (
        Patient.get(Patient.patient_id == "P-2").display_password is not None
    )  # the new one, unseen
    for bad in ({}, {"slips": []}, {"slips": "P-1"}, {"slips": [{"patient_id": 1}]}):
        assert c.post("/staff/api/slips/printed", json=bad).status_code == 400


def test_today_is_the_site_day(site, world):
    """Caracas is UTC-4: 02:00 UTC today is yesterday there."""
    c = staff_client(site)
    zone_now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=4)
    local_midnight = datetime.datetime(
        zone_now.year, zone_now.month, zone_now.day
    ) + datetime.timedelta(hours=4)
    Study.update(recorded_at=local_midnight - datetime.timedelta(minutes=1)).where(
        Study.orthanc_id == world["a"]
    ).execute()
    Study.update(recorded_at=local_midnight + datetime.timedelta(minutes=1)).where(
        Study.orthanc_id == world["b"]
    ).execute()
    today = [r["orthanc_id"] for r in c.get("/staff/api/studies?today=1").json["studies"]]
    assert today == [world["b"]]
    yesterday = (zone_now.date() - datetime.timedelta(days=1)).isoformat()
    assert [
        r["orthanc_id"] for r in c.get(f"/staff/api/studies?day={yesterday}").json["studies"]
    ] == [world["a"]]


def test_modality_filter_matches_whole_codes(site, world):
    data = fake_study("P-3", "3")
    data["modalities"] = ["CTX"]  # "CT" is a substring of it, not its code
    ingest.store_study(data["study_orthanc_id"], data)
    c = staff_client(site)
    answer = c.get("/staff/api/studies?modality=CT").json
    assert {r["patient_id"] for r in answer["studies"]} == {"P-1", "P-2"}
    assert answer["modalities"] == ["CT", "CTX"]
