"""How each stored event class's fields changed over the git history (for class versions).

    .venv/bin/python scripts/event_history.py [--since COMMIT]

Reads every commit's aggregate modules under services/ and shared/ (statically, with `ast`:
old commits need not import) and lists each stored event class — explicit nested classes
and the ones `@event("Name")` makes from a method — with the fields it stores: a decorated
method's parameters, or an explicit class's annotations. Then, per event class, the commits
where that field set changed since the class first appeared, and what an upcaster from the
first shape would have to do (add a field with a default, drop one).

eventsourcing stores an event as its attributes; on loading, a decorated method is called
with the stored attributes its signature names, so a dropped field is ignored and an added
field loads only when the parameter has a default.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENT_BASES = ("Event", "Created", "DomainEvent")


@dataclass(frozen=True)
class Field:
    name: str
    annotation: str
    default: str | None  # source text of the default; None: required

    def describe(self) -> str:
        tail = "" if self.default is None else f" = {self.default}"
        return f"{self.name}: {self.annotation}{tail}"


@dataclass
class Shape:
    commit: str
    subject: str
    module: str
    fields: tuple[Field, ...]
    line: int


@dataclass
class History:
    key: str  # Aggregate.Event
    shapes: list[Shape] = field(default_factory=list)

    def record(self, shape: Shape) -> None:
        last = self.shapes[-1] if self.shapes else None
        if last is None or _names(last) != _names(shape) or last.module != shape.module:
            self.shapes.append(shape)
        else:  # same shape: keep the latest annotations and defaults for the report
            self.shapes[-1] = Shape(
                last.commit, last.subject, shape.module, shape.fields, shape.line
            )


def _names(shape: Shape) -> dict[str, bool]:
    return {f.name: f.default is None for f in shape.fields}


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def _params(function: ast.FunctionDef) -> tuple[Field, ...]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    found = [
        Field(a.arg, ast.unparse(a.annotation) if a.annotation else "?", _text(d))
        for a, d in zip(positional, defaults, strict=True)
        if a.arg != "self"
    ]
    found += [
        Field(a.arg, ast.unparse(a.annotation) if a.annotation else "?", _text(d))
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    return tuple(found)


def _text(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


def _annotations(cls: ast.ClassDef) -> tuple[Field, ...]:
    return tuple(
        Field(node.target.id, ast.unparse(node.annotation), _text(node.value))
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    )


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [ast.unparse(base) for base in cls.bases]


def _is_aggregate(cls: ast.ClassDef, aggregates: set[str]) -> bool:
    return any(b.split(".")[-1] == "Aggregate" or b in aggregates for b in _base_names(cls))


def _event_spec(function: ast.FunctionDef) -> ast.expr | None:
    for decorator in function.decorator_list:
        if (
            isinstance(decorator, ast.Call)
            and ast.unparse(decorator.func).split(".")[-1] == "event"
            and decorator.args
        ):
            return decorator.args[0]
    return None


def events_of(source: str) -> dict[str, tuple[tuple[Field, ...], int]]:
    """`Aggregate.Event` → (stored fields, line) for every aggregate class in a module."""
    tree = ast.parse(source)
    aggregates: set[str] = set()
    found: dict[str, tuple[tuple[Field, ...], int]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        if not _is_aggregate(cls, aggregates):
            continue
        aggregates.add(cls.name)
        nested = {
            n.name: n
            for n in cls.body
            if isinstance(n, ast.ClassDef)
            and any(b.split(".")[-1] in EVENT_BASES for b in _base_names(n))
        }
        for name, node in nested.items():
            found[f"{cls.name}.{name}"] = (_annotations(node), node.lineno)
        created = False
        for function in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            spec = _event_spec(function)
            created = created or (function.name == "__init__" and spec is not None)
            if isinstance(spec, ast.Constant) and isinstance(spec.value, str):
                found[f"{cls.name}.{spec.value}"] = (_params(function), function.lineno)
            elif isinstance(spec, ast.Name) and f"{cls.name}.{spec.id}" in found:
                # Loading calls the method: a parameter's default stands in for a missing field.
                key = f"{cls.name}.{spec.id}"
                defaults = {f.name: f.default for f in _params(function)}
                fields, line = found[key]
                found[key] = (
                    tuple(
                        Field(f.name, f.annotation, f.default or defaults.get(f.name))
                        for f in fields
                    ),
                    line,
                )
            elif function.name == "__init__" and spec is None:
                found[f"{cls.name}.Created"] = (_params(function), function.lineno)
                created = True
        if not created and not any(k.startswith(f"{cls.name}.") for k in found):
            found[f"{cls.name}.Created"] = ((), cls.lineno)
    return found


def shapes_at(commit: str) -> dict[str, dict[str, tuple[tuple[Field, ...], int]]]:
    """`Aggregate.Event` → module → (fields, line), for one commit."""
    found: dict[str, dict[str, tuple[tuple[Field, ...], int]]] = {}
    files = git("ls-tree", "-r", "--name-only", commit, "--", "services", "shared").split()
    for path in (p for p in files if p.endswith(".py")):
        source = git("show", f"{commit}:{path}")
        if "eventsourcing.domain import" not in source:
            continue
        module = path.removesuffix(".py").replace("/", ".")
        for key, shape in events_of(source).items():
            found.setdefault(key, {})[module] = shape
    return found


def histories(since: str | None) -> dict[str, History]:
    """Each event class's shapes over the commits. A class defined in two modules at once (a
    move under way) is followed in the module that defines it today."""
    span = f"{since}..HEAD" if since else "HEAD"
    commits = git("rev-list", "--reverse", span).split()
    today = {key: min(modules) for key, modules in shapes_at(commits[-1]).items()}
    result: dict[str, History] = {}
    for commit in commits:
        subject = git("log", "-1", "--format=%s", commit).strip()
        for key, modules in shapes_at(commit).items():
            module = today.get(key) if today.get(key) in modules else min(modules)
            assert module is not None
            fields, line = modules[module]
            shape = Shape(commit[:7], subject, module, fields, line)
            result.setdefault(key, History(key)).record(shape)
    return result


def upcast_steps(first: Shape, last: Shape) -> list[str]:
    old = {f.name: f for f in first.fields}
    new = {f.name: f for f in last.fields}
    steps = [f"drop `{name}`" for name in old if name not in new]
    for name, now in new.items():
        if name not in old:
            default = now.default if now.default is not None else _guess(now.annotation)
            steps.append(f"add `{name}` = `{default}`")
    return steps


def _guess(annotation: str) -> str:
    if "None" in annotation:
        return "None"
    for prefix, value in (("list", "[]"), ("dict", "{}"), ("bool", "False"), ("str", '""')):
        if annotation.startswith(prefix):
            return value
    return "?? (no default: decide from the domain)"


def report(found: dict[str, History], live: set[str]) -> str:
    rows = []
    changed = []
    for key in sorted(found, key=lambda k: (found[k].shapes[-1].module, k)):
        history = found[key]
        first, last = history.shapes[0], history.shapes[-1]
        if key not in live:
            continue
        fields = ", ".join(f.name for f in last.fields) or "—"
        rows.append(f"| `{last.module}:{key}` | {fields} | {first.commit} |")
        if len(history.shapes) > 1 and _names(first) != _names(last):
            changed.append(history)
    out = ["| topic | stored fields (today) | first commit |", "|---|---|---|", *rows, ""]
    for history in changed:
        first, last = history.shapes[0], history.shapes[-1]
        out.append(f"### `{last.module}:{history.key}`\n")
        for shape in history.shapes:
            listed = ", ".join(f.describe() for f in shape.fields) or "—"
            out.append(f"- {shape.commit} ({shape.subject[:70]}): {listed}")
        added = {f.name for f in last.fields} - {f.name for f in first.fields}
        loads = all(f.default is not None for f in last.fields if f.name in added)
        verdict = "loads today (defaults)" if loads else "does NOT load today"
        out.append(f"- a first-shape event {verdict}")
        out.append(f"- upcaster from the first shape: {'; '.join(upcast_steps(first, last))}\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--since", help="only commits after this one")
    args = parser.parse_args(argv)
    found = histories(args.since)
    print(report(found, set(shapes_at("HEAD"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
