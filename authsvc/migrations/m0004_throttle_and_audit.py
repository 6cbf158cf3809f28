"""Failed logins (the brute-force limits), the hash-chained audit log, and
which principal opened which study in which hour (audit de-duplication)."""

from peewee import CharField, DateTimeField, Model

from .ops import utcnow


class LoginFailure(Model):
    key = CharField(max_length=128)
    at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "loginfailure"
        indexes = ((("key", "at"), False),)


class AuditEvent(Model):
    at = DateTimeField(default=utcnow, index=True)
    event = CharField(max_length=32, index=True)
    actor = CharField(max_length=120, default="", index=True)
    subject = CharField(max_length=120, default="")
    address = CharField(max_length=64, default="")
    detail = CharField(max_length=500, default="")
    chain = CharField(max_length=64)

    class Meta:
        table_name = "auditevent"


class StudyAccess(Model):
    principal = CharField(max_length=120)
    study = CharField(max_length=44)
    hour = CharField(max_length=13)

    class Meta:
        table_name = "studyaccess"
        indexes = ((("principal", "study", "hour"), True),)


TABLES = [LoginFailure, AuditEvent, StudyAccess]


def apply(db):
    with db.bind_ctx(TABLES):
        db.create_tables(TABLES, safe=True)
