"""Commands run before the server starts: `flask --app authsvc migrate`,
`ensure-admin` (first start), `reset-admin-password`."""

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
    StaffUser.create(username=username, role="admin",
                     password_hash=passwords.hash_password(password, generated=False))
    return generated


def register(app):
    @app.cli.command("migrate")
    def migrate_command():
        """Apply the database migrations not yet applied."""
        with database.connection_context():
            applied = migrate()
        click.echo(f"migrations applied: {applied or 'none (up to date)'}")

    @app.cli.command("ensure-admin")
    def ensure_admin_command():
        """Create the admin account at first start (AUTHSVC_ADMIN_PASSWORD or generated)."""
        username = app.config["ADMIN_USERNAME"]
        with database.connection_context():
            generated = ensure_admin(username, os.environ.get("AUTHSVC_ADMIN_PASSWORD"))
        if generated:
            click.echo(f"admin login created: {username} / {generated}  (shown only now)")
        else:
            click.echo(f"admin login: {username} (password printed at first start; "
                       "`make admin-password` prints a new one)")

    @app.cli.command("reset-admin-password")
    def reset_admin_password():
        """Give the admin account a new generated password, printed once."""
        username = app.config["ADMIN_USERNAME"]
        password = passwords.generate()
        with database.connection_context():
            updated = (StaffUser.update(password_hash=passwords.hash_password(password, generated=False))
                       .where(StaffUser.username == username).execute())
        if not updated:
            raise click.ClickException(f"no staff user named {username}")
        click.echo(f"admin login: {username} / {password}  (shown only now)")
