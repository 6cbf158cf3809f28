"""Tag rules: logins for physicians and institutions, decided by the studies'
own DICOM tags.

The hospital's IT person writes the rules file (JSON; lines starting with //
are comments); passwords are made by `make rule-password LOGIN=...`, which
prints one once and writes only its hash into the rule passwords file. Both
files are the source of truth; the service copies them into its database
whenever their content changes (checked on every request, at the cost of two
stat calls) and recomputes which studies each changed login sees, so a
changed or removed rule takes effect at once, without re-reading Orthanc:
ingest recorded the tag values.

A rules file that cannot be read disables every rule login until it is fixed
(fail closed: a typo must not keep open a door the IT person meant to close).
"""

import hashlib
import json
import logging
import os

from . import audit
from .db import database
from .locks import exclusive
from .matching import Matcher, TagError
from .models import (
    IdentityConflict,
    Rule,
    RuleLogin,
    RuleMatch,
    Session,
    StudyTag,
    get_value,
    set_value,
)
from .rulesfile import LoginSpec, RulesError, describe, parse_rules, strip_comments  # noqa: F401
from .sessions import forget_recent

log = logging.getLogger(__name__)

DIGEST_KEY = "rules_digest"
ERROR_KEY = "rules_error"


def error_text(stored, _=None):
    """The rules file's error as kept in ERROR_KEY, in words: English (the
    log, the API), or in the page's language with `_` = gettext. "" if none."""
    if not stored:
        return ""
    try:
        error = json.loads(stored)
    except ValueError:
        return stored  # kept by an earlier version: already words
    text = describe(error, _) if _ else describe(error)
    return f"{error.get('file', '')}: {text}" if error.get("file") else text


def read_passwords(path):
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise RulesError(f"{path}: must be an object of login -> password hash")
    return data


def _read(path):
    if not path or not os.path.exists(path):
        return b""
    with open(path, "rb") as fh:
        return fh.read()


def _distinct_values(tag, cache):
    """The tag's distinct folded values, read once per sync (`cache`): names
    repeat across studies, and many rules name the same tag."""
    if cache is None or tag not in cache:
        values = [
            row.folded
            for row in StudyTag.select(StudyTag.folded).distinct().where(StudyTag.tag == tag)
        ]
        if cache is None:
            return values
        cache[tag] = values
    return cache[tag]


def studies_matching(matcher, cache=None):
    """IDs of the studies with a recorded value the matcher accepts."""
    base = StudyTag.select(StudyTag.study).where(StudyTag.tag == matcher.tag)
    candidates = matcher.candidates()
    prefix = matcher.family_prefix()
    if candidates is not None and prefix is None:
        # No wildcard: the few spellings it matches, looked up in the index.
        return {row.study_id for row in base.where(StudyTag.folded.in_(sorted(candidates)))}
    # Wildcards, or a person's name that may go on with more given names:
    # test each distinct value (a family name's values, when it has one).
    values = _distinct_values(matcher.tag, cache)
    if prefix is not None:
        values = [v for v in values if v.startswith(prefix) or v in candidates]
    accepted = [v for v in values if matcher.matches_folded(v)]
    ids = set()
    for start in range(0, len(accepted), 500):
        chunk = accepted[start : start + 500]
        ids.update(row.study_id for row in base.where(StudyTag.folded.in_(chunk)))
    return ids


def recompute(login, matchers, cache=None):
    RuleMatch.delete().where(RuleMatch.login == login).execute()
    ids = set()
    for matcher in matchers:
        ids |= studies_matching(matcher, cache)
    rows = [{"login": login.id, "study": sid} for sid in sorted(ids)]
    for start in range(0, len(rows), 500):
        RuleMatch.insert_many(rows[start : start + 500]).execute()
    return len(ids)


def apply(specs, hashes):
    """Make the database say what the files say. Returns the logins whose
    rules changed."""
    changed = []
    cache = {}
    existing = {login.name: login for login in RuleLogin.select()}
    for spec in specs:
        login = existing.pop(spec.name, None)
        password_hash = hashes.get(spec.name)
        if login is None:
            login = RuleLogin.create(
                name=spec.name,
                description=spec.description,
                password_hash=password_hash,
                active=True,
                digest="",
            )
        else:
            if login.password_hash != password_hash:
                # A new password ends the sessions opened with the old one.
                Session.update(ended=True).where(Session.rule_login == login).execute()
            RuleLogin.update(
                description=spec.description, password_hash=password_hash, active=True
            ).where(RuleLogin.id == login.id).execute()
        if login.digest != spec.digest:
            Rule.delete().where(Rule.login == login).execute()
            Rule.insert_many(
                [{"login": login.id, "tag": t, "value": v} for t, v in spec.rules]
            ).execute()
            count = recompute(login, spec.matchers, cache)
            RuleLogin.update(digest=spec.digest).where(RuleLogin.id == login.id).execute()
            changed.append((spec.name, count))
    for removed in existing.values():
        # Deleting the login deletes its rules, matches and sessions.
        removed.delete_instance(recursive=True, delete_nullable=True)
        changed.append((removed.name, 0))
    return changed


def sync(rules_path, passwords_path):
    """Bring the database in line with the files if their content changed."""
    rules_bytes, password_bytes = _read(rules_path), _read(passwords_path)
    digest = hashlib.sha256(rules_bytes + b"\0" + password_bytes).hexdigest()
    if get_value(DIGEST_KEY) == digest:
        return None
    with database.atomic():
        try:
            try:
                text = rules_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise RulesError("not_utf8") from None
            specs = parse_rules(text)
            hashes = read_passwords(passwords_path)
        except (RulesError, json.JSONDecodeError) as exc:
            RuleLogin.update(active=False).execute()
            set_value(DIGEST_KEY, digest)
            error = (
                exc.as_dict()
                if isinstance(exc, RulesError)
                else {
                    "code": "json",
                    "line": exc.lineno,
                    "column": exc.colno,
                    "params": {"detail": f"{passwords_path}: {exc.msg}"},
                }
            )
            set_value(
                ERROR_KEY,
                json.dumps(dict(error, file=os.path.basename(rules_path)), ensure_ascii=False),
            )
            forget_recent()
            log.error(
                "rules file rejected, every rule login is disabled until it is fixed: %s", exc
            )
            audit.record("rules_rejected", subject=os.path.basename(rules_path), detail=str(exc))
            return None
        changed = apply(specs, hashes)
        set_value(DIGEST_KEY, digest)
        set_value(ERROR_KEY, "")
    # Logins disabled, removed or given a new password: decide afresh here.
    forget_recent()
    for name, count in changed:
        log.info("rule login %s: rules applied, %d studies match", name, count)
        audit.record("rules_changed", subject=f"rule login {name}", detail=f"{count} studies match")
    return changed


def match_study(study):
    """Record which rule logins see a newly recorded (or updated) study;
    none while its identity is in conflict (authsvc/conflicts.py)."""
    RuleMatch.delete().where(RuleMatch.study == study).execute()
    if (
        IdentityConflict.select()
        .where(
            (IdentityConflict.study_orthanc_id == study.orthanc_id)
            & (IdentityConflict.state == "open")
        )
        .exists()
    ):
        return
    values = {}
    for row in StudyTag.select(StudyTag.tag, StudyTag.folded).where(StudyTag.study == study):
        values.setdefault(row.tag, set()).add(row.folded)
    matched = set()
    query = (
        Rule.select(Rule, RuleLogin)
        .join(RuleLogin)
        .where(RuleLogin.active & Rule.tag.in_(list(values) or [""]))
    )
    for rule in query:
        if rule.login_id in matched:
            continue
        try:
            matcher = Matcher.compile(rule.tag, rule.value)
        except (TagError, ValueError):
            continue
        if any(matcher.matches_folded(v) for v in values[rule.tag]):
            matched.add(rule.login_id)
    if matched:
        RuleMatch.insert_many([{"login": lid, "study": study.id} for lid in matched]).execute()


class RulesWatcher:
    """Per process: notices when the rules files change (stat only) and syncs."""

    def __init__(self, rules_path, passwords_path, lock_path):
        self.rules_path = rules_path
        self.passwords_path = passwords_path
        self.lock_path = lock_path
        self._seen = None

    def _signature(self):
        sig = []
        for path in (self.rules_path, self.passwords_path):
            try:
                st = os.stat(path)
                sig.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except (OSError, TypeError):
                sig.append(None)
        return tuple(sig)

    def check(self, blocking=True, wake=None):
        """Sync if the files changed. Access decisions pass blocking=False:
        they must never wait for a sync (Orthanc's Lua lock is held meanwhile;
        a thousand rules over 100k studies take seconds), so they only wake
        the background worker (`wake`), which syncs at once, and decide with
        the rules applied so far."""
        signature = self._signature()
        if signature == self._seen:
            return
        if not blocking:
            if wake is not None:
                wake.set()
            return
        with exclusive(self.lock_path):
            sync(self.rules_path, self.passwords_path)
        self._seen = signature
