"""The audit log becomes keyed (authsvc/auditchain.py): the entries written so
far keep their plain SHA-256, up to this recorded switch point; every later
one is an HMAC under the audit key. The first keyed entry is the switch
point's marker; `flask migrate` checkpoints it."""

from peewee import CharField, Model, TextField


class AuditEvent(Model):
    class Meta:
        table_name = "auditevent"


class KeyValue(Model):
    key = CharField(max_length=64, unique=True)
    value = TextField()

    class Meta:
        table_name = "keyvalue"


def apply(db):
    with db.bind_ctx([AuditEvent, KeyValue]):
        if KeyValue.select().where(KeyValue.key == "audit_legacy_last").exists():
            return
        last = AuditEvent.select(AuditEvent.id).order_by(AuditEvent.id.desc()).first()
        KeyValue.create(key="audit_legacy_last", value=str(last.id if last else 0))
