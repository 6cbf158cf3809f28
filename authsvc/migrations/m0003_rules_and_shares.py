"""Tag rules and their logins (every tag value of a study, the rules, which
studies each rule login sees) and the shares a patient hands out; a session
may be a rule login's or a share's."""

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, Model

from .ops import add_missing_columns, utcnow


class Patient(Model):
    class Meta:
        table_name = "patient"


class Study(Model):
    class Meta:
        table_name = "study"


class StudyTag(Model):
    study = ForeignKeyField(Study, on_delete="CASCADE")
    tag = CharField(max_length=9)
    value = CharField(max_length=1024)
    folded = CharField(max_length=1024)

    class Meta:
        table_name = "studytag"
        indexes = ((("tag", "folded"), False), (("study", "tag"), False))


class RuleLogin(Model):
    name = CharField(max_length=64, unique=True)
    description = CharField(max_length=255, default="")
    password_hash = CharField(max_length=255, null=True)
    active = BooleanField(default=True)
    digest = CharField(max_length=64, default="")

    class Meta:
        table_name = "rulelogin"


class Rule(Model):
    login = ForeignKeyField(RuleLogin, on_delete="CASCADE")
    tag = CharField(max_length=9)
    value = CharField(max_length=1024)

    class Meta:
        table_name = "rule"


class RuleMatch(Model):
    login = ForeignKeyField(RuleLogin, on_delete="CASCADE")
    study = ForeignKeyField(Study, on_delete="CASCADE")

    class Meta:
        table_name = "rulematch"
        indexes = ((("login", "study"), True), (("study",), False))


class Share(Model):
    secret_hash = CharField(max_length=64, unique=True)
    patient = ForeignKeyField(Patient, on_delete="CASCADE")
    study = ForeignKeyField(Study, null=True, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)
    revoked_at = DateTimeField(null=True)
    revoked_by = CharField(max_length=80, default="")

    class Meta:
        table_name = "share"


class Session(Model):
    rule_login = ForeignKeyField(RuleLogin, null=True, on_delete="CASCADE")
    share = ForeignKeyField(Share, null=True, on_delete="CASCADE")

    class Meta:
        table_name = "session"


NEW_TABLES = [StudyTag, RuleLogin, Rule, RuleMatch, Share]


def apply(db):
    with db.bind_ctx([Patient, Study, Session, *NEW_TABLES]):
        db.create_tables(NEW_TABLES, safe=True)
        add_missing_columns(db, Session, "rule_login", "share")
