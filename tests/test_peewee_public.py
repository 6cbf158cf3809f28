"""The service uses peewee only through its public names: a private one
(`_is_closed`, `__no_default__`, `query._returning`...) may change in any
peewee release without notice, and the pool or the hot statements would then
break silently. `_meta` (a model's declared fields and table) is public: peewee's
documentation describes it for exactly this use."""

import ast
import inspect
import pathlib

import peewee
import playhouse.migrate
import playhouse.pool

AUTHSVC = pathlib.Path(__file__).resolve().parent.parent / "authsvc"
PUBLIC = {"_meta"}


class _Probe(peewee.Model):
    """A model and a query of it: peewee sets some private names only on
    them (a model's `_schema`, a query's `_returning`)."""

    name = peewee.CharField()


STANDARD = set(dir(type)) | set(dir(object))
STANDARD |= {"__module__", "__qualname__", "__weakref__", "__enter__", "__exit__"}


def private(names):
    return {n for n in names if n.startswith("_") and n not in STANDARD and n not in PUBLIC}


def peewee_private_names():
    names = private(vars(_Probe)) | private(vars(_Probe.update(name="").returning(_Probe.id)))
    for module in (peewee, playhouse.pool, playhouse.migrate):
        names |= private(vars(module))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not cls.__module__.startswith(("peewee", "playhouse")):
                continue
            for name in vars(cls):
                names |= private([name])
    return names


def own_names(trees):
    """The private names authsvc defines itself (its own `_run`, `_close`
    hooks...): using those is no use of peewee's."""
    own = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
    return own


def uses_of(names, tree):
    """Attributes read, methods overridden and names looked up by string."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            yield node.lineno, node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in names:
                yield node.lineno, node.value


def test_the_scan_knows_peewees_private_names():
    names = peewee_private_names()
    # The names this codebase once used: the scan must still see them.
    assert {"_is_closed", "_close", "_returning", "_schema"} <= names
    assert "__exception_wrapper__" in names and "_meta" not in names


def peewee_subclasses(tree):
    """The classes of a module that derive from one of peewee's: their
    methods with a private peewee name override peewee's."""
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "peewee",
            "playhouse",
        ):
            imported |= {a.asname or a.name for a in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            (isinstance(b, ast.Name) and b.id in imported)
            or (
                isinstance(b, ast.Attribute)
                and ast.unparse(b).startswith(("peewee.", "playhouse."))
            )
            for b in node.bases
        ):
            yield node


def test_authsvc_uses_no_private_peewee_name():
    trees = {p: ast.parse(p.read_text(), filename=str(p)) for p in sorted(AUTHSVC.rglob("*.py"))}
    peewees = peewee_private_names()
    names = peewees - own_names(trees.values())
    found = [
        f"{path.relative_to(AUTHSVC.parent)}:{line} {name}"
        for path, tree in trees.items()
        for line, name in uses_of(names, tree)
    ]
    found += [
        f"{path.relative_to(AUTHSVC.parent)}:{item.lineno} {cls.name}.{item.name}"
        for path, tree in trees.items()
        for cls in peewee_subclasses(tree)
        for item in cls.body
        if isinstance(item, ast.FunctionDef) and item.name in peewees
    ]
    assert found == []
