"""When each share's link was last used (the shares lists say it)."""

from peewee import DateTimeField, Model

from .ops import add_missing_columns


class Share(Model):
    last_used_at = DateTimeField(null=True)

    class Meta:
        table_name = "share"


def apply(db):
    with db.bind_ctx([Share]):
        add_missing_columns(db, Share, "last_used_at")
