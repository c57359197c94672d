"""Typed option values and one-line messages for pydantic validation errors.

Options arrive as text (command-line flags, ``--set KEY=VALUE``, YAML files read without
implicit typing) and pydantic converts them by each field's type. A failure becomes one
line that names the option (``quantize.k``, or ``--max-iter`` on the command line) and what
it accepts.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Callable, Optional, Sequence

from pydantic import BeforeValidator, ValidationError

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError("must be true or false (or 1/0, yes/no)")
    return value  # bools (and 0/1) are left to pydantic


Flag = typing.Annotated[bool, BeforeValidator(_flag)]
"""A bool that accepts true/false, 1/0 and yes/no as text, and nothing else."""

_WHY = {
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false (or 1/0, yes/no)",
    "bool_type": "must be true or false (or 1/0, yes/no)",
    "string_type": "must be text",
    "string_too_short": "must not be empty",
    "missing": "is required",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "choose one of {expected}",
    "dict_type": "is a section: set its keys",
    "dataclass_type": "is a section: set its keys",
}


def field_types(cls: Any) -> dict[str, Any]:
    """Field name -> resolved type of a dataclass (empty for anything else)."""
    if not dataclasses.is_dataclass(cls):
        return {}
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name) for f in dataclasses.fields(cls)}


def _walk(root: Any, loc: Sequence[Any]) -> tuple[list[str], Any, Any, list[Any]]:
    """Split an error location into the path of field names, the dataclass holding the last
    of them, that field's type, and what is left (an unknown key, or a union's member tags)."""
    names: list[str] = []
    holder, leaf = root, None
    for i, part in enumerate(loc):
        item = _item_type(leaf) if names else None
        if item is not None and isinstance(part, int):  # an entry of a list of sections: name[i]
            names[-1] = f"{names[-1]}[{part}]"
            leaf = item
            continue
        owner = leaf if names else root
        types = field_types(owner)
        if part not in types:
            return names, holder, leaf, list(loc[i:])
        names.append(part)
        holder, leaf = owner, types[part]
        if not dataclasses.is_dataclass(leaf) and _item_type(leaf) is None:
            return names, holder, leaf, list(loc[i + 1:])
    return names, holder, leaf, []


def _item_type(annotation: Any) -> Any:
    """The section type of a list of sections (also inside ``Optional``/``Annotated``), else None."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (None,)
        return item if dataclasses.is_dataclass(item) else None
    for arg in typing.get_args(annotation):
        found = _item_type(arg) if typing.get_origin(arg) in (list, typing.Union, typing.Annotated) else None
        if found is not None:
            return found
    return None


def _first_required(cls: Any) -> Optional[str]:
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            return f.name
    return None


def describe(
    exc: ValidationError,
    root: Any,
    name: Callable[[list[str]], str] = ".".join,
    unknown: str = "config key",
) -> str:
    """One line for all errors of ``exc``; ``root`` is the validated dataclass, ``name``
    turns a path of field names into what the user typed (dotted key or flag)."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        names, holder, leaf, rest = _walk(root, err["loc"])
        kind = err["type"]
        value = err.get("input")
        section = dataclasses.is_dataclass(leaf)
        if kind in ("unexpected_keyword_argument", "extra_forbidden"):
            bad = str(rest[0]) if rest else (names[-1] if names else "?")
            scope, path = (leaf, names) if section else (holder, names[:-1])
            near = difflib.get_close_matches(bad, sorted(field_types(scope)), n=1, cutoff=0.6)
            hint = f" (did you mean {name([*path, near[0]])}?)" if near else ""
            if not path and isinstance(value, dict) and unknown == "config key":
                lines.append(f"unknown config section {bad}{hint}")
            else:
                lines.append(f"unknown {unknown} {name([*path, bad])}{hint}")
            continue
        key = name(names) if names else ""
        if kind == "missing":
            if section and _first_required(leaf):
                key = name([*names, _first_required(leaf)])
            lines.append(f"{key} is required")
        elif kind == "value_error":
            why = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
            if not key:
                lines.append(why)
            else:
                lines.append(f"{key}: {why}" if section and not rest else f"invalid option {key}={value!r}: {why}")
        elif kind in ("dict_type", "dataclass_type"):
            lines.append(f"{key} is a section, not a value: set its keys, e.g. {key}.<key>")
        elif rest:  # a union: what each alternative said
            why = "; ".join(_union_messages(exc, err["loc"][: len(err["loc"]) - len(rest)]))
            lines.append(f"invalid option {key}={value!r}: {why}")
        else:
            template = _WHY.get(kind)
            why = template.format(**err.get("ctx", {})) if template else err["msg"]
            lines.append(f"invalid option {key}={value!r}: {why}")
    return "; ".join(dict.fromkeys(lines))


def _union_messages(exc: ValidationError, prefix: tuple) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        if tuple(err["loc"][: len(prefix)]) == tuple(prefix) and len(err["loc"]) > len(prefix):
            out.append(err["msg"])
    return out


def choices(annotation: Any) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` type (also inside ``Annotated``/``Optional``)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(args)
    out: tuple[str, ...] = ()
    for arg in args:
        out += choices(arg)
    return out
