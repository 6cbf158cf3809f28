"""The patient's shares say whether each link was ever used:
"Usado: nunca" until someone opens it, then when it was last used, in the
site's time zone and the page's language. In-process."""

import datetime
import zoneinfo

from authsvc import ingest
from authsvc.models import Session, Share
from tests.helpers import fake_study


def test_shares_list_never_used_then_last_used(app):
    data = fake_study("SU-1", "1")
    password = ingest.store_study(data["study_orthanc_id"], data)
    patient = app.test_client()
    assert (
        patient.post("/api/login", json={"patient_id": "SU-1", "password": password}).status_code
        == 200
    )
    share = patient.post("/api/shares", json={"study": data["study_orthanc_id"]}).json
    es = patient.get("/portal/api/shares?lang=es").json["shares"]
    assert [s["used"] for s in es] == ["Usado: nunca"]
    assert patient.get("/portal/api/shares?lang=en").json["shares"][0]["used"] == "Used: never"

    holder = app.test_client()
    assert (
        holder.post("/api/login", json={"share": share["url"].split("#share=")[1]}).status_code
        == 200
    )
    used = Share.get_by_id(share["id"]).last_used_at
    assert used is not None
    local = used.replace(tzinfo=datetime.timezone.utc).astimezone(
        zoneinfo.ZoneInfo("America/Caracas")
    )
    row = patient.get("/portal/api/shares?lang=es").json["shares"][0]
    assert (
        row["used"].startswith("Último uso: ") and f"{local.hour}:{local.minute:02d}" in row["used"]
    )
    assert (
        patient.get("/portal/api/shares?lang=en")
        .json["shares"][0]["used"]
        .startswith("Last used: ")
    )

    # Later use of the link's session (an image an hour after opening it)
    # counts, not only the moment it was opened.
    later = used + datetime.timedelta(hours=1, minutes=7)
    Session.update(last_seen=later).where(Session.share == share["id"]).execute()
    local = later.replace(tzinfo=datetime.timezone.utc).astimezone(
        zoneinfo.ZoneInfo("America/Caracas")
    )
    row = patient.get("/portal/api/shares?lang=es").json["shares"][0]
    assert f"{local.hour}:{local.minute:02d}" in row["used"]
    # Staff see it too.
    from authsvc.cli import ensure_admin

    ensure_admin("admin", "admin password long enough")
    staff = app.test_client()
    staff.post("/api/login", json={"username": "admin", "password": "admin password long enough"})
    assert (
        staff.get("/staff/api/shares?lang=es").json["shares"][0]["used"].startswith("Último uso: ")
    )
