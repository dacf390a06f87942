"""One filter language for every read path: conditions on a document's metadata and on who
may read it, as one small tree (this module) that each storage backend translates into its
own query (``storage/sql.py`` for SQLite and PostgreSQL). The retrieval query applies it
before ranking, so a passage it excludes is never a candidate.

The tree is built from ``where`` — a CLI ``--where``, an API request, a Python call — and
from the caller: :class:`ReadableBy` holds the principals a caller acts as, and a document
passes when it is open to everyone who reads its collection or lists one of them.

``where`` in the API and in Python (:func:`parse_where`) is a JSON object as MongoDB and
Chroma write it::

    {"lang": "en"}                                  equal; several keys: all of them hold
    {"year": {"$gte": 2020, "$lt": 2024}}           $eq $ne $gt $gte $lt $lte
    {"lang": {"$in": ["en", "de"]}}                 $in: one of them; $nin: none of them
    {"$or": [{"lang": "en"}, {"team": "billing"}]}  $and, $or: lists of objects like this
    {"$not": {"team": "billing"}}                   $not: an object; on a key too:
    {"year": {"$not": {"$gte": 2020}}}
    {"created_at": {"$gte": "2024-01-01"}}          ISO-8601 dates are strings

``--where`` on the CLI (:func:`parse_cli`) takes ``key=value``, ``key!=value``,
``key>=value`` (``>``, ``<=``, ``<``), ``"key in a,b,c"``, ``"key not in a,b"``, or an
object in the JSON form; several ``--where`` all hold.

What a filter means — the SQL translations and :func:`matches`, the reference the tests
hold both backends to, agree on it:

- A key names a metadata field, ``owner.name`` the field ``name`` of the object at
  ``owner``. ``source`` is the document's source: ``=``, ``!=`` and ``$in`` match it as a
  glob (``*``, ``?``, ``[...]``, case-sensitive), ranges compare it as text.
- A value compares with values of its own kind only: numbers with numbers (1 equals 1.0),
  strings with strings (by code point, so ISO-8601 dates written alike sort in time
  order), booleans with booleans (false < true). The number 2024 is not the string "2024"
  (the CLI's ``year=2024`` asks for either).
- A comparison with a missing key, null, a list, an object or a value of another kind is
  false. Negations are exact complements: ``$ne``, ``$nin`` and ``$not`` keep every
  document their positive form drops, those without the key included —
  ``{"lang": {"$ne": "en"}}`` keeps the documents that have no ``lang``.
- At most 64 conditions (comparisons, ``$in``, ``$nin``), nested at most 8 deep (each
  ``$and``, ``$or``, ``$not`` and object of several conditions is a level), at most 1000
  values in one ``$in``/``$nin``; values are strings, finite numbers or booleans.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, cast

from .errors import InvalidInput

Scalar = str | int | float | bool
Operator = Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True)
class Compare:
    """``key`` (a metadata field; ``source`` is matched as a glob with = and !=, as text by
    ranges) compared with a value. Ranges compare numbers as numbers and strings as text
    (ISO dates sort); a value only ever matches one of its own kind."""

    key: str
    op: Operator
    value: Scalar


@dataclass(frozen=True)
class In:
    """``key`` equals one of ``values`` (``negated``: none of them); globs for ``source``."""

    key: str
    values: tuple[Scalar, ...]
    negated: bool = False


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    part: Filter


@dataclass(frozen=True)
class ReadableBy:
    """Documents the holder of these principals may read: those open to everyone who reads
    their collection, and those whose access list names one of ``principals`` (a user's
    e-mail address, its aliases such as ``slack:U123``, ``group:NAME`` of its groups)."""

    principals: frozenset[str]


Filter = Compare | In | And | Or | Not | ReadableBy
# What a Python caller may pass as ``where``: the JSON form or a tree (:func:`as_filter`).
Where = Mapping[str, Any] | Filter | None


def all_of(*filters: Filter | None) -> Filter | None:
    """The filters that are set, joined with AND (None when none is)."""
    present = tuple(f for f in filters if f is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else And(present)


# -- the JSON form -----------------------------------------------------------------------

MAX_CONDITIONS = 64  # comparisons and $in/$nin in one filter
MAX_DEPTH = 8  # $and, $or, $not and several conditions in one object, nested
MAX_VALUES = 1000  # values of one $in or $nin, and of every condition together
MAX_GLOBS = 32  # source globs: each is a pattern match per document row
SOURCE = "source"  # the document's source, not a metadata field

_COMPARISONS: dict[str, Operator] = {
    "$eq": "=",
    "$ne": "!=",
    "$gt": ">",
    "$gte": ">=",
    "$lt": "<",
    "$lte": "<=",
}
_OPERATORS = "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $not"


def parse_where(value: Mapping[str, Any] | None) -> Filter | None:
    """The filter a ``where`` object in the JSON form describes (None when it is empty);
    :class:`~citewise.errors.InvalidInput` naming the key or operator at fault."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _invalid(f"where must be an object of conditions, not {_type(value)}")
    if not value:
        return None
    node = _Parser().clause(value, 1)
    _bounded(node)
    return node


def as_filter(where: Mapping[str, Any] | Filter | None) -> Filter | None:
    """``where`` as a filter: the JSON form parsed, a tree checked (keys, values, limits)."""
    if where is None or isinstance(where, Mapping):
        return parse_where(where)
    check(where)
    return where


def check(node: Filter) -> None:
    """Refuse a tree built in Python that the JSON form could not say: a bad key or value,
    more than ``MAX_CONDITIONS`` conditions, nesting deeper than ``MAX_DEPTH``."""
    conditions = _check(node, 1)
    if conditions > MAX_CONDITIONS:
        raise _too_many()
    _bounded(node)


def _bounded(node: Filter) -> None:
    """Refuse a filter whose values together would cost every document row too much:
    more than ``MAX_VALUES`` values in all, or more than ``MAX_GLOBS`` source globs."""
    values, globs = _weight(node)
    if values > MAX_VALUES:
        raise _invalid(f"where holds {values} values in all; at most {MAX_VALUES}")
    if globs > MAX_GLOBS:
        raise _invalid(f"where holds {globs} source globs; at most {MAX_GLOBS}")


def _weight(node: Filter) -> tuple[int, int]:
    """(values, source globs) of a filter."""
    if isinstance(node, And | Or):
        weights = [_weight(part) for part in node.parts]
        return sum(w[0] for w in weights), sum(w[1] for w in weights)
    if isinstance(node, Not):
        return _weight(node.part)
    if isinstance(node, In):
        return len(node.values), len(node.values) if node.key == SOURCE else 0
    if isinstance(node, Compare):
        return 1, 1 if node.key == SOURCE else 0
    return 0, 0


def _check(node: Filter, depth: int) -> int:
    if isinstance(node, And | Or | Not):
        _deep(depth)
        parts = node.parts if isinstance(node, And | Or) else (node.part,)
        return sum(_check(part, depth + 1) for part in parts)
    if isinstance(node, Compare):
        if node.op not in _SYMBOLS:
            raise _invalid(f"where {node.key!r}: unknown comparison {node.op!r}")
        check_key(node.key)
        _scalar(node.key, node.op, node.value)
    elif isinstance(node, In):
        _values(node.key, "$nin" if node.negated else "$in", list(node.values))
    elif not isinstance(node, ReadableBy):
        raise _invalid(f"where holds {_type(node)}, which is no filter")
    return 1


def check_key(key: str) -> None:
    """A metadata key: letters, digits and ``_``, nested keys joined by ``.`` (``a.b``)."""
    if not isinstance(key, str) or not all(
        part.replace("_", "a").isalnum() for part in key.split(".")
    ):
        raise _invalid(
            f"invalid metadata filter key {key!r}: a key is letters, digits and _, "
            "a nested one joined by . (owner.name)"
        )


class _Parser:
    """One ``where`` object, counting its conditions as it goes."""

    def __init__(self) -> None:
        self.conditions = 0

    def clause(self, value: Any, depth: int) -> Filter:
        """An object of conditions, all of which hold."""
        if not isinstance(value, Mapping) or not value:
            raise _invalid(f"where expects an object of conditions, not {_type(value)}")
        if len(value) == 1:
            ((key, item),) = value.items()
            return self.entry(key, item, depth)
        _deep(depth)
        return And(tuple(self.entry(key, item, depth + 1) for key, item in value.items()))

    def entry(self, key: Any, value: Any, depth: int) -> Filter:
        if key in ("$and", "$or"):
            _deep(depth)
            if not isinstance(value, list):
                raise _invalid(f"where {key} takes a list of conditions, not {_type(value)}")
            if not value:
                raise _invalid(f"where {key} takes at least one condition")
            parts = tuple(self.clause(item, depth + 1) for item in value)
            return And(parts) if key == "$and" else Or(parts)
        if key == "$not":
            _deep(depth)
            return Not(self.clause(value, depth + 1))
        if isinstance(key, str) and key.startswith("$"):
            raise _invalid(
                f"where: unknown operator {key!r} at the top level; use $and, $or or $not "
                f'there, and {_OPERATORS} on a key ({{"year": {{"$gte": 2020}}}})'
            )
        check_key(key)
        if isinstance(value, Mapping):
            return self.operators(key, value, depth)
        return self.leaf(Compare(key, "=", _scalar(key, "$eq", value)))

    def operators(self, key: str, spec: Mapping[Any, Any], depth: int) -> Filter:
        """``{"$gte": 2020, "$lt": 2024}`` on one key: all of them hold."""
        if not spec:
            raise _invalid(f"where {key!r}: an empty object holds no condition")
        if len(spec) == 1:
            ((name, operand),) = spec.items()
            return self.operator(key, name, operand, depth)
        _deep(depth)
        return And(tuple(self.operator(key, n, v, depth + 1) for n, v in spec.items()))

    def operator(self, key: str, name: Any, operand: Any, depth: int) -> Filter:
        if name in _COMPARISONS:
            return self.leaf(Compare(key, _COMPARISONS[name], _scalar(key, name, operand)))
        if name in ("$in", "$nin"):
            return self.leaf(In(key, _values(key, name, operand), name == "$nin"))
        if name == "$not":
            _deep(depth)
            if not isinstance(operand, Mapping):
                raise _invalid(f"where {key!r} $not takes an object of operators")
            return Not(self.operators(key, operand, depth + 1))
        if isinstance(name, str) and not name.startswith("$"):
            raise _invalid(
                f"where {key!r}: {name!r} is no operator; a nested field is named "
                f"{key}.{name}, operators are {_OPERATORS}"
            )
        raise _invalid(f"where {key!r}: unknown operator {name!r}; use one of {_OPERATORS}")

    def leaf(self, node: Filter) -> Filter:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _too_many()
        return node


def _scalar(key: str, op: str, value: Any) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid(f"where {key!r} {op}: {value} is no number JSON can hold")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:  # SQLite's integers
        raise _invalid(f"where {key!r} {op}: {value} is too large; write it as a float")
    if not isinstance(value, str | int | float | bool):
        raise _invalid(
            f"where {key!r} {op}: the value must be a string, number or boolean, not {_type(value)}"
        )
    if key == SOURCE and not isinstance(value, str):
        raise _invalid(f"where 'source' {op}: the value must be a glob (a string)")
    if isinstance(value, str) and "\x00" in value:  # no metadata holds one (PostgreSQL)
        raise _invalid(f"where {key!r} {op}: the value holds a NUL character")
    return value


def _values(key: str, op: str, values: Any) -> tuple[Scalar, ...]:
    check_key(key)
    if not isinstance(values, list | tuple):
        raise _invalid(f"where {key!r} {op} takes a list of values, not {_type(values)}")
    if len(values) > MAX_VALUES:
        raise _invalid(f"where {key!r} {op} takes at most {MAX_VALUES} values, not {len(values)}")
    return tuple(_scalar(key, op, v) for v in values)


def _deep(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _invalid(
            f"where nests deeper than {MAX_DEPTH} levels ($and, $or, $not and objects of "
            "several conditions each add one)"
        )


def _too_many() -> InvalidInput:
    return _invalid(f"where holds more than {MAX_CONDITIONS} conditions")


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, param="where")


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


# -- the CLI form ------------------------------------------------------------------------

_CLI_COMPARISON = re.compile(r"\s*([^\s!=<>]+)\s*(!=|>=|<=|=|>|<)(.*)", re.DOTALL)
_CLI_IN = re.compile(r"\s*([^\s!=<>]+)\s+(not\s+in|in)\s+(.*)", re.DOTALL | re.IGNORECASE)
_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def parse_cli(pairs: Sequence[str]) -> Filter | None:
    """The filter of ``--where`` options, all of which hold: ``key=value``, ``key!=value``,
    ``key>=value`` (``>``, ``<=``, ``<``), ``key in a,b,c``, ``key not in a,b`` or an
    object in the JSON form. A value that reads as a number (``2024``, ``0.5``) or as
    ``true``/``false`` is compared as one by ranges, and equals both that and its text
    (``year=2024`` matches 2024 and "2024"; ``id=007`` matches 7 and "007")."""
    node = all_of(*(_cli_filter(pair) for pair in pairs))
    return None if node is None else as_filter(node)


def _cli_filter(pair: str) -> Filter | None:
    if pair.lstrip().startswith("{"):
        try:
            value = json.loads(pair)
        except ValueError as exc:
            raise _invalid(f"--where {pair!r} is no JSON object: {exc}") from None
        return parse_where(value)
    found = _CLI_IN.fullmatch(pair)
    if found:
        key, negated = found[1], found[2].lower() != "in"
        texts = [v.strip() for v in found[3].split(",")]
        return In(key, tuple(v for t in texts for v in _cli_values(key, t)), negated)
    found = _CLI_COMPARISON.fullmatch(pair)
    if found is None:
        raise _invalid(
            f"--where {pair!r} is not KEY=VALUE (nor !=, >=, >, <=, <, 'KEY in A,B', "
            "'KEY not in A,B' or a JSON object)"
        )
    key, op, text = found[1], cast(Operator, found[2]), found[3].strip()
    values = _cli_values(key, text)
    if op in ("=", "!=") and len(values) > 1:
        return In(key, values, negated=op == "!=")
    return Compare(key, op, values[0])


def _cli_values(key: str, text: str) -> tuple[Scalar, ...]:
    """The value a ``--where`` text stands for first, then the text itself when it differs."""
    if key == SOURCE:
        return (text,)  # a glob
    typed: Scalar
    if text.lower() in ("true", "false"):
        typed = text.lower() == "true"
    elif _NUMBER.fullmatch(text):
        typed = int(text) if _INTEGER.fullmatch(text) else float(text)
    else:
        return (text,)
    return (typed, text)


# -- the reference semantics -------------------------------------------------------------

_SYMBOLS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MISSING = object()


def matches(node: Filter, metadata: Mapping[str, Any], source: str = "") -> bool:
    """Whether a document with this metadata and source passes ``node``: the semantics
    every backend's translation of the tree must have (the tests hold them to it)."""
    if isinstance(node, And):
        return all(matches(part, metadata, source) for part in node.parts)
    if isinstance(node, Or):
        return any(matches(part, metadata, source) for part in node.parts)
    if isinstance(node, Not):
        return not matches(node.part, metadata, source)
    if isinstance(node, In):
        found = any(_holds(node.key, "=", v, metadata, source) for v in node.values)
        return found != node.negated
    if isinstance(node, Compare):
        return _holds(node.key, node.op, node.value, metadata, source)
    raise TypeError("ReadableBy needs a document's access list: only a store evaluates it")


def _holds(key: str, op: str, value: Scalar, metadata: Mapping[str, Any], source: str) -> bool:
    if op == "!=":
        return not _holds(key, "=", value, metadata, source)
    if key == SOURCE:
        if op == "=":
            return _glob(str(value)).fullmatch(source) is not None
        return _SYMBOLS[op](source, value)
    found = _lookup(metadata, key)
    if kind(value) is None or kind(found) != kind(value):
        return False
    return _SYMBOLS[op](found, value)


def kind(value: Any) -> str | None:
    """What a value compares with: ``number``, ``string``, ``boolean``; None for the rest
    (null, lists, objects), which no condition matches."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def _lookup(metadata: Mapping[str, Any], key: str) -> Any:
    found: Any = metadata
    for part in key.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return _MISSING
        found = found[part]
    return found


@lru_cache(maxsize=256)
def _glob(glob: str) -> re.Pattern[str]:
    """SQLite's GLOB as a Python pattern: ``*``, ``?``, ``[...]`` (``[^...]``)."""
    from .storage.postgres import glob_regex  # the same translation PostgreSQL runs

    return re.compile(glob_regex(glob), re.DOTALL)
