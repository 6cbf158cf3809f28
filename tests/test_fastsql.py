"""The decision path's hand-written statements (authsvc/fastsql.py) against
the real schema, on SQLite and (make test-postgres) PostgreSQL: every column
they name exists, and what they read is what peewee's own queries read, so
that a schema change or a peewee upgrade fails here, loudly."""

import datetime

import pytest

from authsvc import conflicts, fastsql, ingest
from authsvc.db import database
from authsvc.decision import policy, principals
from authsvc.models import Patient, Resource, RuleLogin, RuleMatch, Session, Share, Study
from authsvc.sessions import SESSION, _fetch_session
from tests.helpers import fake_study

# Each statement with parameters of its columns' types.
STATEMENTS = [
    (SESSION, ("x",)),
    (policy.STUDY, ("x",)),
    (policy.STUDY_OF_RESOURCE, ("x", "series")),
    (policy.STUDY_OF_ANY_RESOURCE, ("x",)),
    (policy.STUDIES_OF_PATIENT, (1,)),
    (policy.STUDIES_WITH_UID, ("x",)),
    (policy.RESOURCE_IN_STUDY, (1, "x", "series")),
    (policy.KEYS_OF_STUDY, (1,)),
    (policy.PATIENT_EXISTS, ("x",)),
    (policy._FOR_RULE_LOGIN["study"], (1, "x")),
    (policy._FOR_RULE_LOGIN["study-of-resource"], (1, "x", "series")),
    (principals.RULE_MATCH, (1, 1)),
    (conflicts.BLOCKING, ("x",)),
]


@pytest.fixture
def world(app):
    data = fake_study("PF", "1")
    ingest.store_study(data["study_orthanc_id"], data)
    study = Study.get(Study.orthanc_id == data["study_orthanc_id"])
    patient = Patient.get(Patient.patient_id == "PF")
    login = RuleLogin.create(name="dr", password_hash="x")
    RuleMatch.create(login=login, study=study)
    share = Share.create(
        secret_hash="s", patient=patient, study=study, expires_at=datetime.datetime(2999, 1, 1)
    )
    now = datetime.datetime(2026, 12, 1, 12, 0, 0)
    session = Session.create(
        token_hash="h" * 64,
        kind="share",
        share=share,
        created_at=now,
        last_seen=now,
        expires_at=datetime.datetime(2999, 1, 1),
    )
    return {"data": data, "study": study, "login": login, "session": session}


def test_each_statement_names_only_real_columns(world):
    for statement, params in STATEMENTS:
        assert statement.text().count(database.param) == len(params), statement.name
        cursor = database.execute_sql(statement.text(), params)
        assert len(cursor.description) == statement.width, statement.name


def test_the_session_statement_reads_what_peewee_reads(world):
    mine = _fetch_session("h" * 64)
    theirs = Session.get(Session.token_hash == "h" * 64)
    assert mine.__data__ == theirs.__data__
    assert mine.share.__data__ == Share.get(Share.id == theirs.share_id).__data__
    assert _fetch_session("n" * 64) is None


def test_the_study_statements_read_what_peewee_reads(world):
    study, data = world["study"], world["data"]
    row = fastsql.fetch_one(policy.STUDY, study.orthanc_id)
    built = policy.study_ref(row)
    assert (built.id, built.orthanc_id, built.study_uid, built.patient_id) == (
        study.id,
        study.orthanc_id,
        study.study_uid,
        study.patient_id,
    )
    # The version is updated_at as stored: the same value peewee converts.
    assert Study.updated_at.python_value(built.version) == study.updated_at
    assert [
        policy.study_ref(r) for r in fastsql.fetch_all(policy.STUDIES_OF_PATIENT, study.patient_id)
    ] == [built]
    assert [
        policy.study_ref(r) for r in fastsql.fetch_all(policy.STUDIES_WITH_UID, study.study_uid)
    ] == [built]
    assert fastsql.fetch_all(policy.STUDIES_WITH_UID, "1.2.3.nothing") == []
    assert sorted(oid for (oid,) in fastsql.fetch_all(policy.KEYS_OF_STUDY, study.id)) == sorted(
        r.orthanc_id for r in Resource.select().where(Resource.study == study)
    )
    assert fastsql.fetch_one(policy.PATIENT_EXISTS, study.patient.orthanc_id) is not None
    assert fastsql.fetch_one(policy.PATIENT_EXISTS, "0" * 44) is None
    series_id, series_uid = data["series"][1]
    row = fastsql.fetch_one(policy.STUDY_OF_RESOURCE, series_id, "series")
    assert row[0] == study.id and row[-1] == series_uid
    assert row[-1] == Resource.get(Resource.orthanc_id == series_id).uid
    assert fastsql.fetch_one(policy.STUDY_OF_RESOURCE, series_id, "instance") is None
    assert policy.study_ref(fastsql.fetch_one(policy.STUDY_OF_ANY_RESOURCE, series_id)) == built
    assert fastsql.fetch_one(policy.RESOURCE_IN_STUDY, study.id, series_uid, "series") is not None
    assert fastsql.fetch_one(policy.RESOURCE_IN_STUDY, study.id, series_uid, "instance") is None


def test_prefetch_answers_each_lookup_as_it_would_alone(world):
    study = world["study"]
    alone = [
        fastsql.fetch_one(SESSION, "h" * 64),
        fastsql.fetch_one(policy.STUDY, study.orthanc_id),
    ]
    fastsql.prefetch([(SESSION, ("h" * 64,)), (policy.STUDY, (study.orthanc_id,))])
    together = [
        fastsql.fetch_one(SESSION, "h" * 64),
        fastsql.fetch_one(policy.STUDY, study.orthanc_id),
    ]
    assert [tuple(r) for r in together] == [tuple(r) for r in alone]
    fastsql.prefetch([(SESSION, ("n" * 64,)), (policy.STUDY, ("none",))])
    assert fastsql.fetch_one(SESSION, "n" * 64) is None
    assert fastsql.fetch_one(policy.STUDY, "none") is None


def test_rule_match_and_conflict_lookups(world):
    assert fastsql.fetch_one(principals.RULE_MATCH, world["login"].id, world["study"].id)
    assert fastsql.fetch_one(principals.RULE_MATCH, world["login"].id, -1) is None
    assert conflicts.orthanc_patient_in_conflict(world["data"]["patient_orthanc_id"]) is False
