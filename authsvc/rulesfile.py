"""Reading the rules file, and saying what is wrong with it the way the
person who edits it needs: the real line and column (a trailing comma at the
comma's own line, not at the `]` after it; a missing comma at the end of
the value before it), what to do, in the page's language.

The file is JSON with whole-line `//` comments (blanked before parsing, so
lines and columns stay the file's own). An entry with `"enabled": false` is
checked like any other but gives no login: the shipped examples are such
entries, so that using one is changing one word, never uncommenting lines
and leaving a comma behind.
"""

import json
import re
from dataclasses import dataclass, field

from .matching import Matcher, TagError

LOGIN_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _plain(message, **values):
    return message % values if values else message


# code -> text with %(...)s placeholders. The English is also the log's and
# the API's; the pages pass it through gettext (listed in _texts for the
# catalogs).
def _texts(_):
    return {
        "trailing_comma": _(
            "a comma before %(closer)s: remove it (JSON allows no comma "
            "after the last entry of a list or an object)."
        ),
        "missing_comma": _(
            "a comma is missing at the end of this line, between two entries: add one."
        ),
        "double_quotes": _(
            'names and texts must be in double quotes ("..."), not in single quotes or none.'
        ),
        "missing_colon": _("a colon (:) is missing between a name and its value."),
        "unterminated_string": _("this text has no closing double quote: add one at its end."),
        "control_char": _("a text holds a line break or a tab: keep each text on one line."),
        "bad_escape": _("a backslash in a text must be written twice (\\\\)."),
        "extra_data": _("something follows the end of the rules (their last }): remove it."),
        "inline_comment": _("a comment must be on a line of its own, starting with //."),
        "expecting_value": _(
            'a value is missing here: a "text", true, false, a number, a [list] or an {object}.'
        ),
        "json": _("this is not valid JSON (%(detail)s)."),
        "not_utf8": _("the file is not UTF-8 text: save it as UTF-8."),
        "not_object": _('the file must be one object with a "logins" list.'),
        "entry_not_object": _('each entry of "logins" must be an object {...}.'),
        "bad_login": _('"login" must be 1-64 characters of a-z 0-9 - _ . (it is %(found)s).'),
        "duplicate_login": _("the login %(login)s appears twice: rename or remove one."),
        "bad_enabled": _('"enabled" of %(login)s must be true or false.'),
        "no_rules": _('the login %(login)s needs a non-empty "rules" list.'),
        "rule_not_object": _(
            'rule %(rule)s of %(login)s must be an object {"tag": ..., "value": ...}.'
        ),
        "unknown_keyword": _(
            "%(keyword)s (rule %(rule)s of %(login)s) is not a DICOM "
            "keyword: check its spelling, or write the tag as (gggg,eeee)."
        ),
        "bad_tag": _('rule %(rule)s of %(login)s: "tag" must be a DICOM keyword or (gggg,eeee).'),
        "bad_value": _('rule %(rule)s of %(login)s: "value" must be a non-empty text.'),
        "wildcards_only": _(
            "rule %(rule)s of %(login)s: the value must name something "
            "besides wildcards (* alone would open every study)."
        ),
    }


class RulesError(ValueError):
    """The rules file is not valid: `code`, where (line, column; 1-based, in
    the file itself) and the values its text names."""

    def __init__(self, code, line=None, column=None, **params):
        self.code, self.line, self.column, self.params = code, line, column, params
        super().__init__(describe(self.as_dict()))

    def as_dict(self):
        return {"code": self.code, "line": self.line, "column": self.column, "params": self.params}


def describe(error, _=_plain):
    """An error (RulesError.as_dict()) in words: English, or with `_` the
    page's language."""
    problem = _texts(_).get(error["code"])
    if problem is None:
        return str(error.get("params", {}).get("detail", error["code"]))
    problem = problem % error.get("params", {}) if error.get("params") else problem
    if error.get("line") and error.get("column"):
        where = _("line %(line)s, column %(column)s", line=error["line"], column=error["column"])
    elif error.get("line"):
        where = _("line %(line)s", line=error["line"])
    else:
        return problem
    if error["code"] in _SYNTAX:
        return _("not valid JSON at %(where)s: %(problem)s", where=where, problem=problem)
    return f"{where}: {problem}"


_SYNTAX = {
    "trailing_comma",
    "missing_comma",
    "double_quotes",
    "missing_colon",
    "unterminated_string",
    "control_char",
    "bad_escape",
    "extra_data",
    "inline_comment",
    "expecting_value",
    "json",
}


def strip_comments(text):
    return "\n".join("" if line.lstrip().startswith("//") else line for line in text.splitlines())


def _line_col(text, pos):
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _before(text, pos):
    """The position of the last character before `pos` that is not blank."""
    pos -= 1
    while pos >= 0 and text[pos] in " \t\r\n":
        pos -= 1
    return pos


def syntax_error(text, exc):
    """A JSONDecodeError on the comment-stripped text, as the person who
    edits the file needs it."""
    pos, msg = exc.pos, exc.msg
    here = text[pos : pos + 1]
    prev = _before(text, pos)
    if here in "]}" and here and prev >= 0 and text[prev] == ",":
        return RulesError("trailing_comma", *_line_col(text, prev), closer=here)
    if here == "/":
        return RulesError("inline_comment", *_line_col(text, pos))
    if msg.startswith("Expecting ',' delimiter"):
        return RulesError("missing_comma", *_line_col(text, prev + 1))
    if msg.startswith("Expecting property name") or (
        msg.startswith("Expecting value") and (here == "'" or here.isalpha())
    ):
        return RulesError("double_quotes", *_line_col(text, pos))
    codes = {
        "Expecting ':' delimiter": "missing_colon",
        "Unterminated string": "unterminated_string",
        "Invalid control character": "control_char",
        "Invalid \\": "bad_escape",
        "Extra data": "extra_data",
        "Expecting value": "expecting_value",
    }
    for start, code in codes.items():
        if msg.startswith(start):
            return RulesError(code, *_line_col(text, pos))
    return RulesError("json", *_line_col(text, pos), detail=msg)


class _Lines:
    """Where entries and their rules are in the file, for errors found after
    parsing: the n-th `"login":` key, and the k-th `"tag":` after it."""

    def __init__(self, text):
        self.text = text
        self.logins = [m.start() for m in re.finditer(r'"login"\s*:', text)]

    def entry(self, n):
        if n - 1 < len(self.logins):
            return _line_col(self.text, self.logins[n - 1])[0]
        return None

    def rule(self, n, k):
        if n - 1 >= len(self.logins):
            return None
        end = self.logins[n] if n < len(self.logins) else len(self.text)
        tags = [m.start() for m in re.finditer(r'"tag"\s*:', self.text[self.logins[n - 1] : end])]
        if k - 1 < len(tags):
            return _line_col(self.text, self.logins[n - 1] + tags[k - 1])[0]
        return self.entry(n)


@dataclass
class LoginSpec:
    name: str
    description: str
    rules: list  # [(tag "gggg,eeee", value as written)]
    matchers: list = field(default_factory=list)
    enabled: bool = True

    @property
    def digest(self):
        import hashlib

        return hashlib.sha256(json.dumps(sorted(self.rules)).encode()).hexdigest()


def _rule(rule, where, k, name):
    if not isinstance(rule, dict):
        raise RulesError("rule_not_object", where, rule=k, login=name)
    try:
        return Matcher.compile(rule.get("tag"), rule.get("value"))
    except TagError as exc:
        tag = rule.get("tag")
        if isinstance(tag, str) and tag.strip() and "keyword" in str(exc):
            raise RulesError(
                "unknown_keyword", where, keyword=tag.strip(), rule=k, login=name
            ) from exc
        raise RulesError("bad_tag", where, rule=k, login=name) from exc
    except ValueError as exc:
        code = "wildcards_only" if "wildcards" in str(exc) else "bad_value"
        raise RulesError(code, where, rule=k, login=name) from exc


def parse_all(text):
    """The rules file's text -> [LoginSpec], disabled entries included;
    RulesError on anything off."""
    stripped = strip_comments(text)
    try:
        data = json.loads(stripped or "{}")
    except json.JSONDecodeError as exc:
        raise syntax_error(stripped, exc) from None
    if not isinstance(data, dict) or not isinstance(data.get("logins", []), list):
        raise RulesError("not_object", 1)
    lines = _Lines(stripped)
    specs, seen = [], set()
    for n, entry in enumerate(data.get("logins", []), 1):
        where = lines.entry(n)
        if not isinstance(entry, dict):
            raise RulesError("entry_not_object", where)
        name = entry.get("login")
        if (
            not isinstance(name, str)
            or not name
            or len(name) > 64
            or not set(name) <= LOGIN_NAME_CHARS
        ):
            raise RulesError("bad_login", where, found=json.dumps(name, ensure_ascii=False))
        if name in seen:
            raise RulesError("duplicate_login", where, login=name)
        seen.add(name)
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RulesError("bad_enabled", where, login=name)
        rules = entry.get("rules")
        if not isinstance(rules, list) or not rules:
            raise RulesError("no_rules", where, login=name)
        spec = LoginSpec(name, str(entry.get("description", ""))[:255], [], enabled=enabled)
        for k, rule in enumerate(rules, 1):
            matcher = _rule(rule, lines.rule(n, k), k, name)
            spec.rules.append((matcher.tag, rule["value"]))
            spec.matchers.append(matcher)
        specs.append(spec)
    return specs


def parse_rules(text):
    """The logins the file gives: its entries but the disabled ones."""
    return [spec for spec in parse_all(text) if spec.enabled]
