"""The schema migrations (authsvc/migrations/): a new database migrated has
exactly the schema authsvc/models.py declares; databases made by earlier
commits (SQL dumps in tests/fixtures/, made by tests/fixtures/old_database.py)
upgrade to that same schema with their rows kept, and on PostgreSQL (and
SQLite) a database the migrations left at an older version does too; each
migration is applied once, in a transaction of its own. On PostgreSQL when
AUTHSVC_TEST_DATABASE_URL is set (`make test-postgres`), as every test."""

import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_operations

from authsvc import migrations, models, passwords
from authsvc.db import database, open_database
from authsvc.migrations import m0001_initial, migrate
from authsvc.text import fold
from tests.helpers import ON_POSTGRES, fake_study, fresh_database

FIXTURES = Path(__file__).parent / "fixtures"
EVERY = [version for version, _ in migrations.MIGRATIONS]


def sqlite_schema(db):
    tables = {}
    names = db.execute_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for (table,) in names:
        columns = {
            name: {"type": kind.upper(), "not null": bool(notnull), "default": default, "pk": pk}
            for _, name, kind, notnull, default, pk in db.execute_sql(
                f'PRAGMA table_info("{table}")'
            )
        }
        indexes = {}
        for _, name, unique, origin, partial in db.execute_sql(f'PRAGMA index_list("{table}")'):
            cols = [row[2] for row in db.execute_sql(f'PRAGMA index_info("{name}")')]
            indexes[name] = {
                "unique": bool(unique),
                "columns": cols,
                "origin": origin,
                "partial": bool(partial),
            }
        foreign_keys = sorted(
            (row[3], row[2], row[4], row[5], row[6])  # from, table, to, on update, on delete
            for row in db.execute_sql(f'PRAGMA foreign_key_list("{table}")')
        )
        tables[table] = {"columns": columns, "indexes": indexes, "foreign keys": foreign_keys}
    return tables


def postgres_schema(db):
    tables = {}
    for (table,) in db.execute_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall():
        columns = {
            name: {"type": kind, "length": length, "not null": nullable == "NO", "default": default}
            for name, kind, length, nullable, default in db.execute_sql(
                "SELECT column_name, data_type, character_maximum_length, is_nullable, "
                "column_default FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
        }
        indexes = dict(
            db.execute_sql(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = %s",
                (table,),
            ).fetchall()
        )
        constraints = dict(
            db.execute_sql(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass",
                (table,),
            ).fetchall()
        )
        tables[table] = {"columns": columns, "indexes": indexes, "constraints": constraints}
    return tables


def schema():
    """Every table of the open database: columns (type, length, null,
    default), indexes (name, unique, columns), foreign keys (target, on
    delete) and, on PostgreSQL, constraints by name."""
    db = database.obj
    return postgres_schema(db) if ON_POSTGRES else sqlite_schema(db)


@contextmanager
def opened(url):
    """The database at `url` as the service's, for the block; the one before
    it is the service's again after."""
    before = database.obj
    db = open_database(url)
    try:
        with db.connection_context():
            yield db
    finally:
        if hasattr(db, "close_all"):
            db.close_all()  # PostgreSQL's pool: the database is dropped after
        if before is not None:
            database.initialize(before)


@pytest.fixture
def declared(tmp_path):
    """The schema models.py declares: its tables made by create_tables."""
    folder = tmp_path / "models"
    folder.mkdir()
    with fresh_database(folder) as url:
        with opened(url) as db:
            db.create_tables(models.ALL_MODELS)
            made = schema()
        yield made


@pytest.fixture
def db(database_url):
    with opened(database_url) as db:
        yield db


def test_a_new_database_migrated_has_the_schema_the_models_declare(db, declared):
    assert migrate() == EVERY
    assert set(declared) == {m._meta.table_name for m in models.ALL_MODELS}
    got = schema()
    assert sorted(got) == sorted(declared)
    for table in declared:
        assert got[table] == declared[table], table


@pytest.mark.parametrize("version", EVERY[:-1])
def test_a_database_left_at_an_older_version_upgrades_to_the_same_schema(db, declared, version):
    """Rows written at version 1 survive every later step (on SQLite, adding
    a NOT NULL column rebuilds the table)."""
    assert migrate(upto=1) == [1]
    with db.bind_ctx(m0001_initial.TABLES):
        patient = m0001_initial.Patient.create(patient_id="P-1", orthanc_id="o1", name="DOE^J")
        study = m0001_initial.Study.create(orthanc_id="s1", study_uid="1.2", patient=patient)
        m0001_initial.Resource.create(orthanc_id="r1", uid="1.2.3", level="series", study=study)
        m0001_initial.Session.create(
            token_hash="t" * 64, kind="patient", patient=patient, expires_at=models.utcnow()
        )
    assert migrate(upto=version) == EVERY[1:version]
    assert migrate() == EVERY[version:]
    assert schema() == declared
    assert models.Study.get().patient.patient_id == "P-1"
    assert models.Study.get().patient_name == "DOE^J"  # filled by 0005
    assert models.Patient.get().search_name == "doe j"  # filled by 0002
    assert models.Resource.select().count() == 1 and models.Session.select().count() == 1


def old_dumps():
    return sorted(FIXTURES.glob("old-database-*.sql"))


def rows(conn, table, columns):
    names = ", ".join(f'"{c}"' for c in columns)
    return sorted(conn.execute(f'SELECT {names} FROM "{table}"').fetchall(), key=repr)


@pytest.mark.skipif(ON_POSTGRES, reason="the dumps are SQLite's (PostgreSQL: the test above)")
@pytest.mark.parametrize("dump", old_dumps(), ids=lambda p: p.stem)
def test_a_database_made_by_an_earlier_commit_upgrades_with_its_data_kept(tmp_path, declared, dump):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(dump.read_text())
        had = [v for (v,) in conn.execute("SELECT version FROM schemaversion")]
        before = {
            table: [c[1] for c in conn.execute(f'PRAGMA table_info("{table}")')]
            for (table,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        old_rows = {t: rows(conn, t, columns) for t, columns in before.items()}
    conn.close()
    with opened(f"sqlite:///{path}"):
        assert migrate() == [v for v in EVERY if v not in had]
        assert schema() == declared
        assert migrate() == []
        # Every row is still there, as it was; only the queue and the
        # stored values may have gained some.
        with sqlite3.connect(path) as conn:
            for table, columns in before.items():
                now = rows(conn, table, columns)
                if table in ("ingestqueue", "keyvalue", "schemaversion"):
                    assert set(old_rows[table]) <= set(now), table
                else:
                    assert now == old_rows[table], table
        conn.close()
        patient = models.Patient.get(models.Patient.patient_id == "OLD-1")
        assert passwords.verify(patient.password_hash, "cdef-ghjk-mnpr")
        # Found by name: search_name was filled where 0002 added it.
        assert patient.search_name == fold(patient.name) == "nunez jose"
        assert {s.patient_name for s in patient.studies} == {"NÚÑEZ^JOSÉ"}
        assert models.Study.select().count() == 3 and models.Resource.select().count() == 6
        # The study holding a report is read again (by 0007 or 0010).
        queued = {q.orthanc_id for q in models.IngestQueue.select()}
        assert "52000000-00000000-00000000-00000000-00000000" in queued
        audit_events = models.AuditEvent.select().count()
        assert models.get_value("audit_legacy_last") == (str(audit_events) if 8 not in had else "0")
        if 3 in had:
            login = models.RuleLogin.get(models.RuleLogin.name == "dr-house")
            assert passwords.verify(login.password_hash, "rstu-xz23-4567")
            assert [m.study.orthanc_id for m in models.RuleMatch.select()] == [
                "51000000-00000000-00000000-00000000-00000000"
            ]
            assert models.Share.get().study.patient == patient
            assert models.Session.select().count() == 4


@pytest.mark.skipif(ON_POSTGRES, reason="the dumps are SQLite's")
def test_the_dumps_cover_a_first_release_and_the_previous_one():
    versions = []
    for dump in old_dumps():
        with sqlite3.connect(":memory:") as conn:
            conn.executescript(dump.read_text())
            versions.append(max(v for (v,) in conn.execute("SELECT version FROM schemaversion")))
        conn.close()
    assert 1 in versions and EVERY[-2] in versions


def test_each_migration_is_applied_once(db, monkeypatch):
    calls = []

    def counted(version, step):
        def run(db):
            calls.append(version)
            step(db)

        return run

    monkeypatch.setattr(
        migrations, "MIGRATIONS", [(v, counted(v, step)) for v, step in migrations.MIGRATIONS]
    )
    assert migrate() == EVERY
    assert migrate() == []
    assert calls == EVERY
    assert migrations.applied_versions() == set(EVERY)
    assert models.SchemaVersion.select().count() == len(EVERY)


def test_each_migration_runs_in_its_own_transaction(db, monkeypatch):
    """A migration that fails leaves what it did undone and the earlier ones
    applied; the next run applies it alone."""

    def failing(db):
        db.execute_sql('CREATE TABLE "halfdone" ("id" INTEGER PRIMARY KEY)')
        run_operations(SchemaMigrator.from_database(db).drop_column("ingestqueue", "last_error"))
        raise RuntimeError("the migration fails half way")

    def working(db):
        db.execute_sql('CREATE TABLE "halfdone" ("id" INTEGER PRIMARY KEY)')

    later = len(EVERY) + 1
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (later, failing)])
    with pytest.raises(RuntimeError, match="half way"):
        migrate()
    assert migrations.applied_versions() == set(EVERY)
    assert "halfdone" not in db.get_tables()
    assert "last_error" in {c.name for c in db.get_columns("ingestqueue")}
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS[:-1], (later, working)])
    assert migrate() == [later]
    assert "halfdone" in db.get_tables()


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's pragma")
def test_sqlite_enforces_foreign_keys_again_after_migrating(db):
    migrate()
    assert db.pragma("foreign_keys") == 1


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's pragma")
def test_migrating_inside_a_transaction_is_refused_on_sqlite(db):
    """Inside one, SQLite ignores the pragma and keeps enforcing foreign keys:
    a table rebuilt would delete every row referring to it. Refused."""
    with db.atomic():
        with pytest.raises(migrations.MigrationError, match="outside a transaction"):
            migrate()


def test_migration_0002_adds_the_columns_to_an_older_database_keeping_its_studies(app):
    """Moved here from tests/test_pages_app.py. The NOT NULL slip_language
    rebuilds the patient table on SQLite: with foreign keys enforced, that
    deleted every study, session and share of every patient (ON DELETE
    CASCADE)."""
    from authsvc import ingest

    data = fake_study("P-1", "1", name="DOE^JANE")
    ingest.store_study(data["study_orthanc_id"], data)
    db = database.obj
    columns = ("display_password", "slip_printed_at", "slip_language")
    run_operations(*[SchemaMigrator.from_database(db).drop_column("patient", c) for c in columns])
    models.SchemaVersion.delete().where(models.SchemaVersion.version == 2).execute()
    assert not {c.name for c in db.get_columns("patient")} & set(columns)
    assert migrate() == [2]
    assert set(columns) <= {c.name for c in db.get_columns("patient")}
    patient = models.Patient.get(models.Patient.patient_id == "P-1")
    assert patient.display_password is None and patient.slip_language == ""
    assert [s.orthanc_id for s in patient.studies] == [data["study_orthanc_id"]]
    assert models.Resource.select().count() == len(data["series"]) + len(data["instances"])
    assert migrate() == []  # applied once
