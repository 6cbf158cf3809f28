"""An audit log people can trust: keyed entries, the chain's head
checkpointed outside the database, and what tampering the database alone
(without the audit key) can no longer hide. In-process, on SQLite and (with
AUTHSVC_TEST_DATABASE_URL) PostgreSQL. Each test's database is a throwaway
one made for it, which stands for a "copy of the database": the
attacks below are plain SQL on it, as someone holding the database (a copy,
a backup restored, a DBA) but not the secrets file would run them."""

import hashlib
import json
import os
import stat

import pytest

from authsvc import audit
from authsvc.db import database
from authsvc.models import AuditEvent, KeyValue
from tests.helpers import admin_test_client

ADMIN_PW = "admin password long enough"


def admin_client(app):
    return admin_test_client(app, ADMIN_PW)


def fill(n):
    """n entries written the service's way (audit.record, one append each)."""
    for i in range(n):
        audit.record("login_failed", actor=f"patient X{i}", address=f"10.0.{i // 250}.{i % 250}")


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def report_of(app, client):
    """What staff are told: the API's verdict and the audit page's text."""
    api = client.get("/api/audit?limit=1").json
    page = client.get("/staff/audit?lang=en").get_data(as_text=True)
    return api, page


def attacker_digest(prev, row):
    """What someone without the key can compute for an entry: the plain
    SHA-256 of its content and of the previous entry's chain, exactly as the
    entries were chained before they were keyed."""
    text = json.dumps(
        [prev, row.at.isoformat(), row.event, row.actor, row.subject, row.address, row.detail],
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def rewrite_and_recompute(victim_id, **changes):
    """Change one entry and recompute the chain of it and of every following
    entry, as an attacker without the key would."""
    AuditEvent.update(**changes).where(AuditEvent.id == victim_id).execute()
    before = (
        AuditEvent.select().where(AuditEvent.id < victim_id).order_by(AuditEvent.id.desc()).first()
    )
    prev = before.chain if before else ""
    for row in AuditEvent.select().where(AuditEvent.id >= victim_id).order_by(AuditEvent.id):
        prev = attacker_digest(prev, row)
        AuditEvent.update(chain=prev).where(AuditEvent.id == row.id).execute()


def test_an_untouched_chain_is_whole_and_checkpoints_are_private(app):
    admin = admin_client(app)
    fill(300)
    assert cli(app, "audit-checkpoint")[0] == 0
    fill(20)  # entries after the newest checkpoint are fine too
    api, page = report_of(app, admin)
    assert api["chain_ok"] is True and api["chain_broken_at"] is None
    assert api["verification"]["problems"] == []
    assert "The audit log is whole" in page and "has been altered" not in page
    code, out = cli(app, "audit-verify")
    assert code == 0 and "the audit log is whole" in out
    path = os.path.join(app.config["DATA_DIR"], "audit-checkpoints.log")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The key itself is in no entry, no checkpoint line and not in the database.
    key = json.load(open(app.config["SECRETS_FILE"]))["audit_key"]
    assert key not in open(path).read()
    assert not KeyValue.select().where(KeyValue.value.contains(key)).exists()


def test_deleting_the_newest_500_entries_is_reported(app):
    admin = admin_client(app)
    fill(1200)
    assert cli(app, "audit-checkpoint")[0] == 0  # what the schedule / a shutdown writes
    newest = [
        e.id for e in AuditEvent.select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(500)
    ]
    AuditEvent.delete().where(AuditEvent.id.in_(newest)).execute()
    api, page = report_of(app, admin)
    assert api["chain_ok"] is False
    assert "Entries were removed" in page and "has been altered" in page
    code, out = cli(app, "audit-verify")
    assert code == 1 and "REMOVED" in out
    # The service goes on appending on top of the shortened chain (SQLite
    # even hands out the deleted ids again): still reported.
    fill(600)
    assert admin.get("/api/audit?limit=1").json["chain_ok"] is False
    assert cli(app, "audit-verify")[0] == 1


def test_rewriting_an_entry_with_the_chain_recomputed_is_reported(app):
    admin = admin_client(app)
    fill(200)
    victim = AuditEvent.select().order_by(AuditEvent.id).offset(57).first()
    rewrite_and_recompute(victim.id, address="10.6.6.6", actor="patient SOMEONE-ELSE")
    api, page = report_of(app, admin)
    assert api["chain_ok"] is False and api["chain_broken_at"] == victim.id
    assert f"Entry {victim.id} does not match its key" in page
    code, out = cli(app, "audit-verify")
    assert code == 1 and f"entry #{victim.id}" in out


def test_the_audit_page_says_it_in_spanish(app):
    admin = admin_client(app)
    fill(50)
    victim = AuditEvent.select().order_by(AuditEvent.id).offset(10).first()
    rewrite_and_recompute(victim.id, detail="nada")
    page = admin.get("/staff/audit?lang=es").get_data(as_text=True)
    assert "El registro de auditoría fue alterado" in page
    assert f"La entrada {victim.id} no coincide con su clave" in page


def test_a_forged_checkpoint_line_is_reported(app):
    fill(30)
    assert cli(app, "audit-checkpoint")[0] == 0
    AuditEvent.delete().where(AuditEvent.id > 20).execute()
    path = os.path.join(app.config["DATA_DIR"], "audit-checkpoints.log")
    last = json.loads(open(path).read().splitlines()[-1])
    head = AuditEvent.select().order_by(AuditEvent.id.desc()).first()
    forged = dict(last, entries=20, last_id=head.id, last_mac=head.chain)
    with open(path, "a") as fh:  # a line made to match the shortened database
        fh.write(json.dumps(forged) + "\n")
    code, out = cli(app, "audit-verify")
    assert code == 1 and "FORGED" in out and "REMOVED" in out


def test_a_legacy_chain_keeps_verifying_and_cannot_absorb_keyed_entries(app):
    """A database from before the key: its plain SHA-256 entries stay
    verifiable, new ones are keyed from the recorded switch point on; moving
    that point (to pass keyed entries off as legacy ones and recompute them
    without the key) is reported."""
    from authsvc import migrations
    from authsvc.models import SchemaVersion, set_value

    # The database as version 7 left it: unkeyed entries, no switch point.
    AuditEvent.delete().execute()
    prev = ""
    for i in range(40):
        row = AuditEvent(
            at=AuditEvent.at.default(),
            event="login",
            actor=f"staff u{i}",
            subject="",
            address="10.0.0.1",
            detail="",
        )
        prev = row.chain = attacker_digest(prev, row)
        row.save()
    KeyValue.delete().where(KeyValue.key == "audit_legacy_last").execute()
    SchemaVersion.delete().where(SchemaVersion.version == 8).execute()
    assert migrations.migrate() == [8]
    legacy_last = AuditEvent.select().order_by(AuditEvent.id.desc()).first().id
    fill(10)
    assert cli(app, "audit-checkpoint")[0] == 0
    code, out = cli(app, "audit-verify")
    assert code == 0, out
    assert AuditEvent.get(AuditEvent.id == legacy_last + 1).event == "audit_keyed"
    # The attacker moves the switch point past the keyed entries and
    # recomputes them as legacy ones.
    newest = AuditEvent.select().order_by(AuditEvent.id.desc()).first().id
    set_value("audit_legacy_last", newest)
    rewrite_and_recompute(legacy_last + 3, detail="changed")
    code, out = cli(app, "audit-verify")
    assert code == 1 and "ALTERED" in out
    # Even with no checkpoint file at all, the missing keyed marker shows.
    os.remove(os.path.join(app.config["DATA_DIR"], "audit-checkpoints.log"))
    code, out = cli(app, "audit-verify")
    assert code == 1 and "ALTERED: entry" in out


def test_the_service_checkpoints_on_schedule_and_at_shutdown(app, caplog):
    """The workers' thread (gunicorn_conf starts it) and worker_exit."""
    import logging

    from authsvc import gunicorn_conf

    services = app.extensions["authsvc"]
    fill(5)
    with caplog.at_level(logging.INFO, logger="authsvc.auditchain"):
        assert services.audit_checkpoints.run_once("scheduled", min_interval=300)
        fill(1)
        # Another worker's schedule, a moment later: skipped (one was just written).
        assert services.audit_checkpoints.run_once("scheduled", min_interval=300) is None

        class Worker:
            wsgi = app

        gunicorn_conf.worker_exit(None, Worker)  # the shutdown writes the newest head
    path = os.path.join(app.config["DATA_DIR"], "audit-checkpoints.log")
    lines = [json.loads(line) for line in open(path).read().splitlines()]
    assert [line["reason"] for line in lines] == ["scheduled", "shutdown"]
    assert lines[-1]["entries"] == AuditEvent.select().count()
    assert "audit checkpoint (shutdown): %d entries" % lines[-1]["entries"] in caplog.text
    database.connect(reuse_if_open=True)


@pytest.mark.stack
def test_make_run_checkpoints_the_switch_point_at_migration(stack):
    """The real launcher: `flask migrate` writes the first checkpoint (with
    the switch point) before the service starts; the file is the owner's."""
    path = stack.data_dir / "audit-checkpoints.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = json.loads(path.read_text().splitlines()[0])
    assert first["reason"] == "migration" and "legacy_last" in first and first["mac"]
    assert "audit_key" in json.loads((stack.data_dir / "secrets.json").read_text())


@pytest.mark.stack
def test_the_real_service_checkpoints_when_it_stops(tmp_path):
    """The launcher's gunicorn (its worker_exit hook): an entry written, the
    stack stopped, and the newest head is in the checkpoint file and the
    service log. A stack of its own (SQLite), stopped by the test."""
    import requests

    from deploy.trial import Stack
    from tests.helpers import free_port

    ports = {
        k: free_port() for k in ("http_port", "orthanc_http_port", "dicom_port", "service_port")
    }
    s = Stack(
        tmp_path / "data",
        dict(ports, stable_age_seconds=1),
        env={"AUTHSVC_ADMIN_PASSWORD": ADMIN_PW},
    )
    s.start()
    try:
        r = requests.post(
            s.public_url + "/api/login",
            timeout=10,
            json={"username": "admin", "password": ADMIN_PW},
        )
        assert r.status_code == 200
    finally:
        s.stop_all()
    lines = [
        json.loads(line) for line in (s.data_dir / "audit-checkpoints.log").read_text().splitlines()
    ]
    assert [line["reason"] for line in lines] == ["migration", "shutdown"]
    assert lines[-1]["entries"] == 1 and lines[-1]["last_mac"].startswith("k1:")
    log = (s.logs / "authsvc.log").read_text()
    assert (
        f"audit checkpoint (shutdown): 1 entries, last #{lines[-1]['last_id']} "
        f"{lines[-1]['last_mac']}" in log
    )
