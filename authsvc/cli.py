"""Commands run before the server starts: `flask --app authsvc migrate`,
`ensure-admin` (first start), `reset-admin-password`."""

import json
import os

import click

from . import passwords
from .db import database
from .migrations import migrate
from .models import StaffUser


def ensure_admin(username, password=None):
    """Create the admin account if there is none. Returns the password when one
    was generated (to be printed once), else None."""
    if StaffUser.select().where(StaffUser.role == "admin").exists():
        return None
    generated = None
    if not password:
        password = generated = passwords.generate()
    StaffUser.create(
        username=username,
        role="admin",
        password_hash=passwords.hash_password(password, generated=False),
    )
    return generated


def set_rule_password(passwords_path, rules_path, login):
    """Generate a password for a rule login, write its hash, return it (to print once)."""
    from .rules import parse_rules, read_passwords

    with open(rules_path, encoding="utf-8") as fh:
        names = {spec.name for spec in parse_rules(fh.read())}
    if login not in names:
        raise click.ClickException(f"no login {login!r} in {rules_path}")
    hashes = read_passwords(passwords_path)
    password = passwords.generate()
    hashes[login] = passwords.hash_password(password)
    tmp = passwords_path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        json.dump(hashes, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, passwords_path)
    return password


def register(app):
    @app.cli.command("migrate")
    def migrate_command():
        """Apply the database migrations not yet applied."""
        from . import auditchain

        with database.connection_context():
            applied = migrate()
            # The audit chain's head (and its legacy switch point) outside
            # the database before the service appends anything.
            auditchain.checkpoint("migration")
        click.echo(f"migrations applied: {applied or 'none (up to date)'}")

    @app.cli.command("unmatched-tags")
    def unmatched_tags_command():
        """Print the physician and institution values of the last 30 days'
        studies that no rule matches (to write the rules file from)."""
        from .unmatched import DAYS, unmatched_values

        with database.connection_context():
            # The rules file as saved now, not as the service last applied it.
            app.extensions["authsvc"].rules.check()
            rows = unmatched_values()
        click.echo(f"tag values of the studies of the last {DAYS} days that no rule matches:")
        for keyword, value, count, newest in rows:
            click.echo(
                f"{keyword:30} {json.dumps(value, ensure_ascii=False):40} "
                f"{count} stud{'y' if count == 1 else 'ies'}, newest {newest:%Y-%m-%d}"
            )
        if not rows:
            click.echo("(none)")

    @app.cli.command("audit-checkpoint")
    def audit_checkpoint_command():
        """Append the audit chain's head to the checkpoint file now (the
        service also does it every AUDIT_CHECKPOINT_SECONDS and at shutdown)."""
        from . import auditchain

        with database.connection_context():
            written = auditchain.checkpoint("command")
        click.echo("audit checkpoint written" if written else "audit checkpoint unchanged")

    @app.cli.command("audit-verify")
    def audit_verify_command():
        """Check the audit log against its key and the newest checkpoint;
        exit 1 when an entry was altered or removed."""
        from . import auditchain

        with database.connection_context():
            report = auditchain.verify()
        for line in auditchain.describe(report):
            click.echo(line)
        if not report.ok:
            raise SystemExit(1)

    @app.cli.command("ensure-admin")
    def ensure_admin_command():
        """Create the admin account at first start (AUTHSVC_ADMIN_PASSWORD or generated)."""
        username = app.config["ADMIN_USERNAME"]
        with database.connection_context():
            generated = ensure_admin(username, os.environ.get("AUTHSVC_ADMIN_PASSWORD"))
        if generated:
            click.echo(f"admin login created: {username} / {generated}  (shown only now)")
        else:
            click.echo(
                f"admin login: {username} (password printed at first start; "
                "`make admin-password` prints a new one; on an installed server, "
                "`orthanc-patient-access reset-admin-password`)"
            )

    @app.cli.command("reset-admin-password")
    def reset_admin_password():
        """Give the admin account a new generated password, printed once."""
        username = app.config["ADMIN_USERNAME"]
        password = passwords.generate()
        with database.connection_context():
            updated = (
                StaffUser.update(password_hash=passwords.hash_password(password, generated=False))
                .where(StaffUser.username == username)
                .execute()
            )
        if not updated:
            raise click.ClickException(f"no staff user named {username}")
        click.echo(f"admin login: {username} / {password}  (shown only now)")

    @app.cli.command("rule-password")
    @click.argument("login")
    def rule_password(login):
        """Give a rule login a new generated password, printed once (its hash is
        written to RULE_PASSWORDS_FILE; the old password stops working)."""
        password = set_rule_password(
            os.path.abspath(app.config["RULE_PASSWORDS_FILE"]),
            os.path.abspath(app.config["RULES_FILE"]),
            login,
        )
        click.echo(f"rule login: {login} / {password}  (shown only now)")

    @app.cli.command("backup")
    @click.argument("dest", required=False)
    def backup_command(dest):
        """Write an online, consistent copy of the database (default:
        DATA_DIR/backups/authsvc-<time>.sqlite3 or .pgdump)."""
        from .backup import BackupError, backup, default_name

        url = app.config["DATABASE_URL"]
        dest = dest or default_name(os.path.join(app.config["DATA_DIR"], "backups"), url)
        try:
            click.echo(f"backup written: {backup(url, dest)}")
        except BackupError as exc:
            raise click.ClickException(str(exc)) from exc

    @app.cli.command("restore")
    @click.argument("source")
    def restore_command(source):
        """Replace the database by a backup. Stop the service first."""
        from .backup import BackupError, restore

        try:
            restore(app.config["DATABASE_URL"], source)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"restored from {source}; start the service again")
