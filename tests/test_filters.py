"""One filter language (filters.py) on every path: the JSON and CLI forms parsed, and the
tree translated by each backend held to the pure-Python reference, ``filters.matches``, on
random documents and random filters — SQLite and PostgreSQL, one suite."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citewise import Workspace
from citewise.documents import Chunk, Document
from citewise.errors import InvalidInput
from citewise.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_VALUES,
    And,
    Compare,
    Filter,
    In,
    Not,
    Or,
    ReadableBy,
    as_filter,
    matches,
    parse_cli,
    parse_where,
)
from citewise.workspace import init_workspace
from conftest import new_database
from test_cli import citewise

BACKENDS = ["sqlite", "postgresql"]
TEXT = "rotating keys"  # every document's text: a keyword search finds them all


# -- parsing ---------------------------------------------------------------------------


def test_the_json_form_builds_the_tree() -> None:
    assert parse_where(None) is None and parse_where({}) is None
    assert parse_where({"lang": "en"}) == Compare("lang", "=", "en")  # as before: equality
    assert parse_where({"lang": "en", "year": 2024}) == And(
        (Compare("lang", "=", "en"), Compare("year", "=", 2024))
    )
    assert parse_where({"year": {"$gte": 2020, "$lt": 2024}}) == And(
        (Compare("year", ">=", 2020), Compare("year", "<", 2024))
    )
    operators = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
    for name, op in operators.items():
        assert parse_where({"n": {name: 1.5}}) == Compare("n", op, 1.5)
    assert parse_where({"lang": {"$in": ["en", "de"]}}) == In("lang", ("en", "de"))
    assert parse_where({"lang": {"$nin": []}}) == In("lang", (), negated=True)
    assert parse_where({"$or": [{"a": 1}, {"$not": {"b": True}}]}) == Or(
        (Compare("a", "=", 1), Not(Compare("b", "=", True)))
    )
    assert parse_where({"$and": [{"a": 1}]}) == And((Compare("a", "=", 1),))
    assert parse_where({"year": {"$not": {"$gte": 2020}}}) == Not(Compare("year", ">=", 2020))
    assert parse_where({"owner.name": "ann"}) == Compare("owner.name", "=", "ann")
    assert parse_where({"created_at": {"$gte": "2024-01-01"}}) == Compare(
        "created_at", ">=", "2024-01-01"
    )


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"lang": {"$like": "e%"}}, r"'lang': unknown operator '\$like'; use one of \$eq"),
        ({"$nor": [{"a": 1}]}, r"unknown operator '\$nor' at the top level"),
        ({"bad key;": 1}, "invalid metadata filter key 'bad key;'"),
        ({"a..b": 1}, "invalid metadata filter key 'a..b'"),
        ({"owner": {"name": "ann"}}, "'name' is no operator; a nested field is named owner.name"),
        ({"a": None}, "'a' \\$eq: the value must be a string, number or boolean, not null"),
        ({"a": [1, 2]}, "the value must be a string, number or boolean, not a list"),
        ({"a": {"$gt": [1]}}, r"'a' \$gt: the value must be a string, number or boolean"),
        ({"a": {"$in": "en"}}, r"'a' \$in takes a list of values, not str"),
        ({"a": {"$in": [None]}}, "the value must be a string, number or boolean, not null"),
        ({"a": {"$in": list(range(MAX_VALUES + 1))}}, "takes at most 1000 values, not 1001"),
        ({"a": float("nan")}, "no number JSON can hold"),
        ({"a": {"$lt": 2**64}}, "18446744073709551616 is too large"),
        ({"source": 3}, "'source' \\$eq: the value must be a glob"),
        ({"s": {"$in": ["a\x00"]}}, r"'s' \$in: the value holds a NUL character"),
        ({"$or": []}, r"\$or takes at least one condition"),
        ({"$and": {"a": 1}}, r"\$and takes a list of conditions, not an object"),
        ({"$not": [{"a": 1}]}, "where expects an object of conditions, not a list"),
        ({"a": {}}, "an empty object holds no condition"),
        ({"$or": [{"a": 1}, {f"k{i}": i for i in range(MAX_CONDITIONS)}]}, "more than 64"),
    ],
)
def test_a_bad_filter_is_refused_naming_what_is_wrong(where: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as refused:
        parse_where(where)
    assert refused.value.param == "where"


def test_filters_nest_at_most_eight_deep() -> None:
    def nested(levels: int) -> dict[str, Any]:
        where: dict[str, Any] = {"a": 1}
        for _ in range(levels):
            where = {"$not": where}
        return where

    assert parse_where(nested(MAX_DEPTH)) is not None
    with pytest.raises(InvalidInput, match="nests deeper than 8 levels"):
        parse_where(nested(MAX_DEPTH + 1))
    with pytest.raises(InvalidInput, match="nests deeper than 8 levels"):
        parse_where(nested(10_000))  # refused as it is read, not by a RecursionError
    with pytest.raises(InvalidInput, match="where must be an object of conditions, not a list"):
        parse_where([{"a": 1}])


def test_a_tree_from_python_is_checked_like_the_json_form() -> None:
    tree = And((Compare("year", ">=", 2020), In("lang", ("en", "de"), negated=True)))
    assert as_filter(tree) is tree
    assert as_filter({"year": 2020}) == Compare("year", "=", 2020)
    assert as_filter(None) is None
    for bad, message in [
        (Compare("a'; DROP TABLE documents; --", "=", 1), "invalid metadata filter key"),
        (Compare("a", "LIKE", "x"), "unknown comparison 'LIKE'"),
        (Compare("a", "=", None), "the value must be a string, number or boolean"),
        (In("source", (1,)), "'source' \\$in: the value must be a glob"),
        (And(tuple(Compare("a", "=", i) for i in range(MAX_CONDITIONS + 1))), "more than 64"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            as_filter(bad)


def test_the_cli_form() -> None:
    assert parse_cli([]) is None
    assert parse_cli(["lang=en"]) == Compare("lang", "=", "en")
    # A number (or true/false) equals itself and its text: "2024" stored as text still matches.
    assert parse_cli(["year=2024"]) == In("year", (2024, "2024"))
    assert parse_cli(["id=007"]) == In("id", (7, "007"))
    assert parse_cli(["score = 0.5"]) == In("score", (0.5, "0.5"))
    assert parse_cli(["draft=true"]) == In("draft", (True, "true"))
    assert parse_cli(["lang!=en"]) == Compare("lang", "!=", "en")
    assert parse_cli(["year!=2024"]) == In("year", (2024, "2024"), negated=True)
    assert parse_cli(["year>=2020"]) == Compare("year", ">=", 2020)  # ranges: the number
    assert parse_cli(["year>2020", "year<2024"]) == And(
        (Compare("year", ">", 2020), Compare("year", "<", 2024))
    )
    assert parse_cli(["created_at<=2024-07-01"]) == Compare("created_at", "<=", "2024-07-01")
    assert parse_cli(["lang in en, de"]) == In("lang", ("en", "de"))
    assert parse_cli(["lang NOT IN fr"]) == In("lang", ("fr",), negated=True)
    assert parse_cli(["shard in 1,x"]) == In("shard", (1, "1", "x"))
    assert parse_cli(["title=a=b"]) == Compare("title", "=", "a=b")
    assert parse_cli(["source=docs/*"]) == Compare("source", "=", "docs/*")  # a glob, never 1
    assert parse_cli(["source=2024"]) == Compare("source", "=", "2024")
    assert parse_cli(['{"year": {"$gte": 2020}}', "lang=en"]) == And(
        (Compare("year", ">=", 2020), Compare("lang", "=", "en"))
    )
    for bad, message in [
        ("lang", "'lang' is not KEY=VALUE"),
        ("=en", "is not KEY=VALUE"),
        ("bad key=1", "is not KEY=VALUE"),
        ("a;b=1", "invalid metadata filter key"),
        ("{not json", "is no JSON object"),
        ('{"$xor": []}', r"unknown operator '\$xor'"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_cli([bad])


def test_the_reference_semantics() -> None:
    metadata = {"year": 2024, "y": "2024", "f": 1.0, "ok": True, "tags": ["a"], "o": {"k": 1}}
    assert matches(Compare("year", "=", 2024.0), metadata)  # numbers by value
    assert not matches(Compare("year", "=", "2024"), metadata)  # kinds never mix
    assert not matches(Compare("ok", "=", 1), metadata)  # true is not 1
    assert matches(Compare("f", "<", 2), metadata)
    assert not matches(Compare("y", "<", 2025), metadata)
    assert matches(Compare("o.k", "=", 1), metadata) and not matches(Compare("o", "=", 1), metadata)
    assert not matches(Compare("tags", "=", "a"), metadata)  # a list is not its items
    # A missing key: every comparison false, every negation true.
    assert not matches(Compare("lang", "=", "en"), metadata)
    assert not matches(Compare("lang", ">=", ""), metadata)
    assert matches(Compare("lang", "!=", "en"), metadata)
    assert matches(In("lang", ("en",), negated=True), metadata)
    assert matches(Not(Compare("lang", "<", "z")), metadata)
    assert matches(Compare("source", "=", "docs/*.md"), {}, "docs/a.md")
    assert not matches(Compare("source", "=", "docs/*.md"), {}, "docs/a.txt")
    assert matches(Compare("source", ">=", "docs/"), {}, "docs/a.md")
    assert matches(And(()), {}) and not matches(Or(()), {})
    with pytest.raises(TypeError, match="only a store evaluates it"):
        matches(ReadableBy(frozenset({"ann@example.com"})), {})


# -- both backends against the reference ----------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, int]]:
    """(store, collection id) of an empty workspace on each backend."""
    url = new_database(request.getfixturevalue("postgres")) if request.param != "sqlite" else ""
    directory = init_workspace(tmp_path_factory.mktemp("filters") / "ws", store=url)
    ws = Workspace.open(directory)
    yield ws.store, ws.collection().id
    ws.close()


def replace_all(store: Any, collection_id: int, documents: dict[str, dict[str, Any]]) -> None:
    """The collection holds exactly these documents (source -> metadata)."""
    store.delete_documents(collection_id, list(store.sources(collection_id).values()))
    for n, (source, metadata) in enumerate(documents.items()):
        document = Document(source, source, TEXT, [], f"h{n}", metadata)
        chunk = Chunk(0, 0, len(TEXT), TEXT, 2)
        store.replace_document(collection_id, document, [chunk], np.eye(1, 384, dtype=np.float32))


def passing(store: Any, collection_id: int, node: Filter) -> set[str]:
    """The sources of the documents the store lets through the filter."""
    found = store.filtered_chunk_ids(collection_id, node).tolist()
    return set(store.chunk_sources(found).values())


def keyword_passing(store: Any, collection_id: int, node: Filter) -> set[str]:
    found = [chunk for chunk, _ in store.keyword_search(TEXT, [collection_id], 1000, node)]
    return set(store.chunk_sources(found).values())


# Values from small pools, so that documents and filters often meet. Each key mostly
# holds one kind — numbers (ints and floats that can be equal), strings (case, accents,
# an astral character, quotes, digits), ISO-8601 dates and times, booleans — and now and
# then another, a null, a list or an object; ``x`` holds anything.
integers = st.integers(-3, 3) | st.sampled_from([10, 2024, -1000])
floats = st.sampled_from([0.5, -1.5, 2.0, 3.0, 2024.0, 0.1, 1e-3, 0.30000000000000004])
numbers = integers | floats
words = st.sampled_from(["en", "de", "EN", "é", "😀", "2024", "true", "", "a'b", "%?\\"]) | st.text(
    alphabet="aAé😀0 '%?", max_size=3
)
days = st.dates(date(2023, 12, 30), date(2024, 1, 2))
dates = days.map(date.isoformat) | st.builds(
    lambda day, hours: (
        datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(hours=hours)
    ).isoformat(),
    days,
    st.integers(0, 30),
)
scalars = numbers | words | dates | st.booleans()
KINDS = {"n": numbers, "s": words, "d": dates, "b": st.booleans()}
KEYS = ["n", "s", "d", "b", "x", "0", "o.k", "o.0", "l.0", "a.b"]


def values_for(key: str) -> st.SearchStrategy[Any]:
    """Mostly the key's own kind, sometimes any scalar."""
    own = KINDS.get(key.split(".")[-1], KINDS.get(key, scalars))
    return st.integers(0, 3).flatmap(lambda n: scalars if n == 3 else own)


def stored_for(key: str) -> st.SearchStrategy[Any]:
    others = st.none() | st.lists(scalars, max_size=2)
    return st.integers(0, 7).flatmap(lambda n: others if n == 7 else values_for(key))


objects = st.fixed_dictionaries({}, optional={"k": stored_for("s"), "0": stored_for("n")})
metadata = st.fixed_dictionaries(
    {},
    optional={
        **{key: stored_for(key) for key in ("n", "s", "d", "b", "x", "0")},
        "o": objects | stored_for("x"),
        "l": st.lists(scalars, max_size=2) | objects,
        "a.b": stored_for("x"),  # a dot in a stored key: a.b names o["a"]["b"], never it
    },
)
# Sources: a few folders and names, matched by globs of their characters and wildcards.
source_names = st.builds(
    lambda folder, name, suffix: f"{folder}/{name}.{suffix}",
    st.sampled_from(["docs", "Docs", "mail", "a[b]", "ab"]),
    st.text(alphabet="abc", min_size=1, max_size=2),
    st.sampled_from(["md", "txt"]),
)
globs = (
    st.sampled_from(["docs/*", "*.md", "mail/?*", "*[ab]*", "[dm]*", "[^d]*", "a[b]/*", "*"])
    | source_names
    | st.lists(
        st.sampled_from(["*", "?", "a", "b", "docs/", ".md", "[ab]", "[^a]", "[a-c]"]),
        min_size=1,
        max_size=4,
    ).map("".join)
)
operators = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


@st.composite
def leaves(draw: st.DrawFn) -> Filter:
    key = draw(st.sampled_from([*KEYS, "source"]))
    values = globs if key == "source" else values_for(key)
    if draw(st.integers(0, 3)) == 0:
        return In(key, tuple(draw(st.lists(values, max_size=3))), draw(st.booleans()))
    return Compare(key, draw(operators), draw(values))


trees = st.recursive(
    leaves(),
    lambda parts: (
        st.lists(parts, max_size=3).map(lambda found: And(tuple(found)))
        | st.lists(parts, max_size=3).map(lambda found: Or(tuple(found)))
        | parts.map(Not)
    ),
    max_leaves=8,
)
corpora = st.lists(
    st.tuples(source_names, metadata), min_size=1, max_size=8, unique_by=lambda d: d[0]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora, node=trees)
def test_every_backend_filters_as_the_reference_does(
    store: tuple[Any, int], corpus: list[tuple[str, dict[str, Any]]], node: Filter
) -> None:
    database, collection_id = store
    documents = dict(corpus)
    replace_all(database, collection_id, documents)
    expected = {s for s, values in documents.items() if matches(node, values, s)}
    assert passing(database, collection_id, node) == expected
    assert keyword_passing(database, collection_id, node) == expected


def test_metadata_and_who_may_read_in_one_tree(store: tuple[Any, int]) -> None:
    database, collection_id = store
    database.delete_documents(collection_id, list(database.sources(collection_id).values()))
    for name, access, year in [("open", None, 2024), ("ann", ("ann@example.com",), 2024)]:
        document = Document(name, name, TEXT, [], name, {"year": year}, access=access)
        chunk = Chunk(0, 0, len(TEXT), TEXT, 2)
        database.replace_document(
            collection_id, document, [chunk], np.eye(1, 384, dtype=np.float32)
        )
    year = Compare("year", "=", 2024)
    ann, bob = ReadableBy(frozenset({"ann@example.com"})), ReadableBy(frozenset({"bob@x.org"}))
    assert passing(database, collection_id, And((year, ann))) == {"open", "ann"}
    assert passing(database, collection_id, And((year, bob))) == {"open"}
    assert passing(database, collection_id, And((year, Not(bob)))) == {"ann"}
    assert keyword_passing(database, collection_id, Or((Not(year), bob))) == {"open"}


# -- the CLI and the server ------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_workspace(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test corpus, ingested: safety.pdf has 2 pages, thermostat.py is Python."""
    directory = tmp_path_factory.mktemp("filtered") / "ws"
    shutil.copytree(ingested_template / "ws", directory)
    return directory


def test_search_where_on_the_command_line(corpus_workspace: Path) -> None:
    def found(*where: str) -> set[str]:
        options = [arg for w in where for arg in ("--where", w)]
        result = citewise(
            "-w",
            str(corpus_workspace),
            "search",
            "keys",
            "-k",
            "100",
            "--mode",
            "dense",
            "--json",
            *options,
        )
        assert result.returncode == 0, result.stderr
        return {Path(hit["source"]).name for hit in json.loads(result.stdout)}

    everything = found()
    assert {"safety.pdf", "thermostat.py", "guide.md"} <= everything
    assert found("pages>=2") == {"safety.pdf"}
    assert found("pages=2") == {"safety.pdf"}  # the number (or the text "2")
    assert found('{"pages": {"$gte": 2, "$lt": 3}}') == {"safety.pdf"}
    assert found("language in python,go") == {"thermostat.py"}
    assert found("language not in python") == everything - {"thermostat.py"}
    assert found("language!=python", "source=*.md") == {"guide.md"}
    assert found('{"$or": [{"language": "python"}, {"pages": 2}]}') == {
        "thermostat.py",
        "safety.pdf",
    }
    refused = citewise("-w", str(corpus_workspace), "search", "keys", "--where", "pages")
    assert refused.returncode == 2 and "--where" in refused.stderr
    assert "'pages' is not KEY=VALUE" in refused.stderr and "Traceback" not in refused.stderr
    unknown = citewise("-w", str(corpus_workspace), "search", "keys", "--where", '{"$xor": 1}')
    assert unknown.returncode == 2 and "unknown operator '$xor'" in unknown.stderr


def test_search_where_over_http(corpus_workspace: Path) -> None:
    from fastapi.testclient import TestClient

    from citewise.server import create_app

    workspace = Workspace.open(corpus_workspace)
    app = create_app(workspace, auth=False)
    try:
        client = TestClient(app, base_url="http://127.0.0.1:8080")  # no key: loopback only

        def search(where: Any) -> Any:
            return client.post("/v1/search", json={"query": "keys", "k": 20, "where": where})

        ranged = search({"pages": {"$gte": 2}, "source": {"$in": ["*.pdf", "*.docx"]}})
        assert ranged.status_code == 200, ranged.text
        assert {Path(h["source"]).name for h in ranged.json()["data"]} == {"safety.pdf"}
        python = search({"language": "python"}).json()["data"]
        assert {Path(h["source"]).name for h in python} == {"thermostat.py"}
        for where, message in [
            ({"pages": {"$between": [1, 2]}}, "unknown operator '$between'"),
            ({"pages": [1, 2]}, "the value must be a string, number or boolean"),
            ({"bad key": 1}, "invalid metadata filter key"),
        ]:
            refused = search(where)
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["param"] == "where" and error["code"] == "invalid_value"
            assert message in error["message"]
        chat = client.post(
            "/v1/chat/completions",
            json={
                "model": "citewise",
                "messages": [{"role": "user", "content": "keys?"}],
                "where": {"$or": "x"},
            },
        )
        assert chat.status_code == 400 and chat.json()["error"]["param"] == "where"
    finally:
        app.state.service.close()
        workspace.close()


def test_a_filter_that_would_cost_every_row_too_much_is_refused() -> None:
    globs = {"source": {"$in": [f"docs/{n}/*" for n in range(33)]}}
    with pytest.raises(InvalidInput, match="33 source globs"):
        parse_where(globs)
    many = {"$or": [{f"k{n}": {"$in": list(range(20))}} for n in range(60)]}
    with pytest.raises(InvalidInput, match="1200 values in all"):
        parse_where(many)
    assert parse_where({"source": {"$in": [f"docs/{n}/*" for n in range(32)]}}) is not None
