"""The storage conformance suite, access part: users, groups, aliases and per-document
access lists behave the same on every backend — SQLite and PostgreSQL (a real server from
``pgserver``, a database of its own per test). Stores are opened directly: documents go in
through ``replace_document`` with small vectors, no embedder."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citewise.documents import Chunk, Document
from citewise.errors import InvalidInput, NotFound
from citewise.keys import REMOVED_USER, authenticate, create_key, list_keys
from citewise.storage import DocumentAccess, Storage, open_storage
from citewise.storage.migrate import copy_store
from conftest import new_database

BACKENDS = ["sqlite", "postgresql"]
DIM = 4


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    url = new_database(request.getfixturevalue("postgres")) if request.param == "postgresql" else ""
    opened = open_storage(url, tmp_path)
    yield opened
    opened.close()


def write(store: Storage, collection_id: int, source: str, access: tuple[str, ...] | None) -> int:
    """A document of two chunks, restricted to ``access`` (None: open)."""
    text = f"{source} is about rotating keys. Second part."
    document = Document(source, source, text, [], f"hash-{source}-{access}", access=access)
    chunks = [Chunk(0, 0, 10, text[:10], 2), Chunk(1, 10, len(text), text[10:], 5)]
    vectors = np.eye(2, DIM, dtype=np.float32)
    return store.replace_document(collection_id, document, chunks, vectors)


def readable_documents(store: Storage, collection_id: int, principals: frozenset[str]) -> set[int]:
    chunk_ids = store.readable_chunk_ids(collection_id, principals).tolist()
    return set(store.chunk_documents(chunk_ids).values())


def test_users_groups_and_aliases(store: Storage) -> None:
    alice = store.add_user("Alice@Example.com", "Alice")
    assert (alice.email, alice.name, alice.aliases, alice.groups) == (
        "alice@example.com",
        "Alice",
        (),
        (),
    )
    store.add_user("bob@example.com")
    with pytest.raises(InvalidInput, match="exists"):
        store.add_user("ALICE@example.com")
    for bad in ("alice", "a@b@c", "al ice@example.com", "", "@example.com"):
        with pytest.raises(InvalidInput, match="invalid e-mail address"):
            store.add_user(bad)

    assert store.add_group("hr").members == ()
    assert store.add_group("group:eng").name == "eng"  # the prefix is optional
    with pytest.raises(InvalidInput, match="exists"):
        store.add_group("hr")
    for bad in ("", "h r", "../x", "-x"):
        with pytest.raises(InvalidInput, match="invalid group name"):
            store.add_group(bad)

    assert store.add_member("hr", "ALICE@example.com") is True
    assert store.add_member("hr", "alice@example.com") is False  # a member already
    assert store.add_member("eng", "bob@example.com") is True
    with pytest.raises(NotFound, match="no group nope"):
        store.add_member("nope", "alice@example.com")
    with pytest.raises(NotFound, match=r"no user carol@example\.com"):
        store.add_member("hr", "carol@example.com")

    assert store.add_alias("alice@example.com", "slack:U123ABC") is True
    assert store.add_alias("alice@example.com", "slack:U123ABC") is False
    assert store.add_alias("alice@example.com", "Alice@Old.example") is True  # lowercased
    with pytest.raises(InvalidInput, match=r"belongs to alice@example\.com"):
        store.add_alias("bob@example.com", "slack:U123ABC")
    with pytest.raises(InvalidInput, match="a user of that address exists"):
        store.add_alias("alice@example.com", "bob@example.com")
    with pytest.raises(InvalidInput, match=r"is an alias of alice@example\.com"):
        store.add_user("alice@old.example")
    with pytest.raises(InvalidInput, match="a group cannot be an alias"):
        store.add_alias("alice@example.com", "group:eng")
    with pytest.raises(NotFound):
        store.add_alias("carol@example.com", "slack:U999")

    assert [u.email for u in store.users()] == ["alice@example.com", "bob@example.com"]
    assert store.user("alice@example.com") == store.users()[0]
    assert store.users()[0].aliases == ("alice@old.example", "slack:U123ABC")
    assert store.users()[0].groups == ("hr",)
    assert store.user("carol@example.com") is None
    assert {g.name: g.members for g in store.groups()} == {
        "eng": ("bob@example.com",),
        "hr": ("alice@example.com",),
    }

    assert store.remove_member("hr", "alice@example.com") is True
    assert store.remove_member("hr", "alice@example.com") is False
    assert store.remove_alias("slack:U123ABC") is True
    assert store.remove_alias("slack:U123ABC") is False
    assert store.remove_group("eng") is True
    assert store.remove_group("eng") is False
    assert store.user("bob@example.com").groups == ()  # its memberships went with it
    assert store.remove_user("bob@example.com") is True
    assert store.remove_user("bob@example.com") is False
    assert [u.email for u in store.users()] == ["alice@example.com"]


def test_identities(store: Storage) -> None:
    store.add_user("alice@example.com")
    store.add_group("hr")
    store.add_group("eng")
    store.add_member("hr", "alice@example.com")
    store.add_member("eng", "alice@example.com")
    store.add_alias("alice@example.com", "slack:U123ABC")
    assert store.identities("Alice@Example.com") == {
        "alice@example.com",
        "slack:U123ABC",
        "group:hr",
        "group:eng",
    }
    assert store.identities("nobody@example.com") == frozenset()
    assert store.identities("not an address") == frozenset()
    store.remove_user("alice@example.com")
    assert store.identities("alice@example.com") == frozenset()
    assert store.add_user("alice@example.com").groups == ()  # nothing came back with it


def test_restricted_documents_are_read_by_their_principals_only(store: Storage) -> None:
    collection = store.create_collection("docs", "test", DIM)
    store.add_user("alice@example.com")
    store.add_user("bob@example.com")
    store.add_group("hr")
    store.add_member("hr", "alice@example.com")
    store.add_alias("bob@example.com", "slack:UBOB")
    handbook = write(store, collection.id, "handbook", None)
    salaries = write(store, collection.id, "salaries", ("group:hr",))
    notes = write(store, collection.id, "notes", ("slack:UBOB", "Carol@Example.com"))
    sealed = write(store, collection.id, "sealed", ())

    alice, bob = store.identities("alice@example.com"), store.identities("bob@example.com")
    assert readable_documents(store, collection.id, alice) == {handbook, salaries}
    assert readable_documents(store, collection.id, bob) == {handbook, notes}
    assert readable_documents(store, collection.id, frozenset()) == {handbook}
    # Access lists are matched as stored: e-mail addresses lowercased.
    assert readable_documents(store, collection.id, frozenset({"CAROL@example.com"})) == {
        handbook,
        notes,
    }
    assert store.readable_chunk_ids(collection.id, alice).tolist() == sorted(
        store.document_chunk_ids(handbook) + store.document_chunk_ids(salaries)
    )
    assert store.document_access(handbook) == DocumentAccess(False, ())
    assert store.document_access(salaries) == DocumentAccess(True, ("group:hr",))
    assert store.document_access(notes) == DocumentAccess(True, ("carol@example.com", "slack:UBOB"))
    assert store.document_access(sealed) == DocumentAccess(True, ())
    assert store.access_counts(collection.id) == {"open": 1, "restricted": 3}

    # A membership change applies to the next query: nothing is stored per user.
    store.add_member("hr", "bob@example.com")
    bob = store.identities("bob@example.com")
    assert readable_documents(store, collection.id, bob) == {handbook, salaries, notes}

    # Writing a document again replaces its access list, in its own transaction.
    assert write(store, collection.id, "salaries", ("alice@example.com",)) == salaries
    assert readable_documents(store, collection.id, bob) == {handbook, notes}
    assert write(store, collection.id, "salaries", None) == salaries
    assert store.document_access(salaries) == DocumentAccess(False, ())
    assert readable_documents(store, collection.id, frozenset()) == {handbook, salaries}
    with pytest.raises(InvalidInput, match="invalid identity"):  # the old version stays
        write(store, collection.id, "salaries", ("group:hr", "two words"))
    assert store.document_access(salaries) == DocumentAccess(False, ())

    store.delete_documents(collection.id, [notes, sealed])
    with pytest.raises(NotFound):
        store.document_access(notes)
    assert readable_documents(store, collection.id, bob) == {handbook, salaries}
    assert store.access_counts(collection.id) == {"open": 2, "restricted": 0}
    assert store.integrity_problems() == []


def test_listing_and_counts_are_restricted_in_the_store(store: Storage) -> None:
    """``list_documents(readable_by=...)`` and ``readable_counts`` against a few lines of
    Python: a page counts readable documents only, a document naming several of a reader's
    principals is listed and counted once, and a reader of nothing gets nothing."""
    collection = store.create_collection("docs", "test", DIM)
    other = store.create_collection("other", "test", DIM)
    store.add_user("alice@example.com")
    store.add_user("bob@example.com")
    store.add_user("carol@example.com")  # in no group, named by no list: reads open ones
    store.add_group("hr")
    store.add_member("hr", "alice@example.com")
    store.add_alias("bob@example.com", "slack:UBOB")
    lists: list[tuple[str, ...] | None] = [
        None,
        ("group:hr",),
        ("alice@example.com", "group:hr"),  # two of alice's principals
        ("slack:UBOB",),
        (),
        ("dave@example.com",),
        ("group:hr", "slack:UBOB"),
    ]
    # Written out of source order, so that id order and source order differ.
    written = {
        f"doc{n:02d}": (write(store, collection.id, f"doc{n:02d}", lists[n % 7]), lists[n % 7])
        for n in reversed(range(23))
    }
    write(store, other.id, "elsewhere", None)  # another collection's: never listed here
    sealed = store.create_collection("sealed", "test", DIM)
    for n in range(3):
        write(store, sealed.id, f"sealed{n}", ("group:hr",))

    everything = store.list_documents(collection.id, limit=1000)
    assert [r.source for r in everything] == sorted(written)
    assert store.list_documents(collection.id, 1000, 0, readable_by=None) == everything
    readers = {
        email: store.identities(email)
        for email in ("alice@example.com", "bob@example.com", "carol@example.com")
    }
    readers["unknown"] = frozenset()
    for name, principals in readers.items():
        expected = [
            record
            for record in everything
            if (access := written[record.source][1]) is None or set(access) & principals
        ]
        for limit, offset in [(1000, 0), (3, 0), (3, 3), (5, 7), (4, len(expected) - 1)]:
            page = store.list_documents(collection.id, limit, offset, readable_by=principals)
            assert page == expected[offset : offset + limit], (name, limit, offset)
        assert store.list_documents(collection.id, 5, len(expected), principals) == []
        chunks = sum(len(store.document_chunk_ids(r.id)) for r in expected)
        assert store.readable_counts(collection.id, principals) == (len(expected), chunks), name
        chunk_ids = store.readable_chunk_ids(collection.id, principals)
        assert store.readable_counts(collection.id, principals)[1] == len(chunk_ids)

    alice, carol = readers["alice@example.com"], readers["carol@example.com"]
    assert len(store.list_documents(sealed.id, 10, 0, alice)) == 3
    assert store.readable_counts(sealed.id, alice) == (3, 6)
    assert store.list_documents(sealed.id, 10, 0, carol) == []
    assert store.readable_counts(sealed.id, carol) == (0, 0)
    empty = store.create_collection("empty", "test", DIM)
    assert store.list_documents(empty.id, 10, 0, alice) == []
    assert store.readable_counts(empty.id, alice) == (0, 0)


def test_access_lists_are_copied_with_their_documents(store: Storage, tmp_path: Path) -> None:
    collection = store.create_collection("docs", "test", DIM)
    store.add_user("alice@example.com", "Alice")
    store.add_group("hr")
    store.add_member("hr", "alice@example.com")
    store.add_alias("alice@example.com", "slack:U1")
    key, _ = create_key(store, "alice-key", ["*"], ["ask"], user="alice@example.com")
    write(store, collection.id, "open", None)
    write(store, collection.id, "hr-only", ("group:hr",))
    write(store, collection.id, "sealed", ())
    (tmp_path / "copy").mkdir()
    target = open_storage("", tmp_path / "copy")
    try:
        report = copy_store(store, target)
        assert (report.users, report.groups, report.keys) == (1, 1, 1)
        copied = target.collection("docs")
        sources = target.sources(copied.id)
        assert target.document_access(sources["open"]) == DocumentAccess(False, ())
        assert target.document_access(sources["hr-only"]) == DocumentAccess(True, ("group:hr",))
        assert target.document_access(sources["sealed"]) == DocumentAccess(True, ())
        assert target.identities("alice@example.com") == store.identities("alice@example.com")
        assert authenticate(target, key).user == "alice@example.com"
    finally:
        target.close()


def test_a_users_key_stops_working_when_the_user_is_removed(store: Storage) -> None:
    with pytest.raises(NotFound, match=r"no user alice@example\.com"):
        create_key(store, "early", ["*"], ["ask"], user="alice@example.com")
    store.add_user("alice@example.com")
    key, record = create_key(store, "alice-key", ["*"], ["ask"], user="Alice@Example.com")
    service, _ = create_key(store, "service", ["*"], ["ask"])
    assert record.user == "alice@example.com"
    assert authenticate(store, key).user == "alice@example.com"
    assert authenticate(store, service).user is None
    assert store.remove_user("alice@example.com")
    assert authenticate(store, key) is None  # refused at once
    assert authenticate(store, service) is not None
    store.add_user("alice@example.com")  # the same address again is another user
    assert authenticate(store, key) is None
    (revoked,) = [k for k in list_keys(store, include_revoked=True) if k.name == "alice-key"]
    assert revoked.revoked_at is not None and revoked.user == REMOVED_USER
    # Fail closed at lookup too, not only by revocation: were the key active again, a key
    # whose user is gone is still refused.
    store.execute("UPDATE api_keys SET revoked_at = NULL WHERE name = 'alice-key'")
    assert authenticate(store, key) is None


def test_an_imported_key_whose_user_is_missing_arrives_revoked(store: Storage) -> None:
    """A user's key copied into a store without that user never becomes a service key."""
    row = ("ghost", "cw-abcdefgh", "x" * 64, '["*"]', '["ask"]', None, None, "t", None)
    assert store.import_api_key((*row, "ghost@example.com"))
    (imported,) = list_keys(store, include_revoked=True)
    assert imported.revoked_at is not None and imported.user is None
    assert list_keys(store) == []


_EMAILS = ["a@x.io", "b@x.io", "c@x.io", "d@x.io"]
_GROUPS = ["hr", "eng", "ops"]
_ALIASES = ["slack:UA", "slack:UB", "github:c"]
_IDENTITIES = [*_EMAILS, *(f"group:{g}" for g in _GROUPS), *_ALIASES, "e@x.io", "group:none"]
_examples = itertools.count()


@dataclass(frozen=True)
class Directory:
    users: frozenset[str]
    members: frozenset[tuple[str, str]]  # (group, e-mail)
    aliases: dict[str, str]  # alias -> e-mail
    documents: list[frozenset[str] | None]  # access lists

    def identities(self, email: str) -> set[str]:
        if email not in self.users:
            return set()
        return (
            {email}
            | {alias for alias, owner in self.aliases.items() if owner == email}
            | {f"group:{group}" for group, member in self.members if member == email}
        )


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    users = sorted(draw(st.sets(st.sampled_from(_EMAILS[:3]))))
    members: frozenset[tuple[str, str]] = frozenset()
    aliases: dict[str, str] = {}
    if users:
        pairs = st.tuples(st.sampled_from(_GROUPS), st.sampled_from(users))
        members = draw(st.frozensets(pairs))
        for alias in draw(st.sets(st.sampled_from(_ALIASES))):
            aliases[alias] = draw(st.sampled_from(users))
    access = st.none() | st.frozensets(st.sampled_from(_IDENTITIES), max_size=4)
    documents = draw(st.lists(access, min_size=1, max_size=6))
    return Directory(frozenset(users), members, aliases, documents)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(directory=directories())
def test_readable_chunks_match_a_reference(store: Storage, directory: Directory) -> None:
    """Random users, groups, memberships, aliases and access lists: what each user may
    read is what a few lines of Python say it is — a thousand generated directories per
    backend, each checked for five users (one of them unknown)."""
    for user in store.users():
        store.remove_user(user.email)
    for group in store.groups():
        store.remove_group(group.name)
    for email in directory.users:
        store.add_user(email)
    for group in {g for g, _ in directory.members} | {"ops"}:
        store.add_group(group)
    for group, email in directory.members:
        store.add_member(group, email)
    for alias, email in directory.aliases.items():
        store.add_alias(email, alias)
    collection = store.create_collection(f"c{next(_examples)}", "test", DIM)
    documents = directory.documents
    ids = [
        write(store, collection.id, f"doc{n}", None if access is None else tuple(sorted(access)))
        for n, access in enumerate(documents)
    ]

    for email in [*_EMAILS, "e@x.io"]:
        identities = directory.identities(email)
        assert store.identities(email) == identities
        expected = {
            document_id
            for document_id, access in zip(ids, documents, strict=True)
            if access is None or access & identities
        }
        assert readable_documents(store, collection.id, store.identities(email)) == expected
        chunk_ids = store.readable_chunk_ids(collection.id, store.identities(email)).tolist()
        assert chunk_ids == sorted(c for d in expected for c in store.document_chunk_ids(d))
    counts = store.access_counts(collection.id)
    assert counts == {
        "open": sum(a is None for a in documents),
        "restricted": sum(a is not None for a in documents),
    }


def test_a_store_made_before_access_lists_migrates(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store with the schema before access lists (that migration left out) opens,
    migrates, and reads what it held as open to its collection; opening again is a no-op."""
    from citewise.storage import postgres, sqlite

    for backend in BACKENDS:
        url = new_database(request.getfixturevalue("postgres")) if backend == "postgresql" else ""
        directory = tmp_path / backend
        directory.mkdir()
        with monkeypatch.context() as patch:
            # The schema up to the access migration (later ones left out with it).
            if backend == "sqlite":
                before = sqlite.MIGRATIONS.index(sqlite._m008_access)
                patch.setattr(sqlite, "MIGRATIONS", sqlite.MIGRATIONS[:before])
            else:
                names = [name for name, _ in postgres._MIGRATIONS]
                before = next(i for i, name in enumerate(names) if "access" in name)
                patch.setattr(postgres, "_MIGRATIONS", postgres._MIGRATIONS[:before])
            old = open_storage(url, directory)
            collection = old.create_collection("docs", "test", DIM)
            old.execute(  # the old schema's columns: replace_document writes new ones
                "INSERT INTO documents (collection_id, source, title, content_hash, text, "
                "updated_at) VALUES (?, 'old', 'old', 'h', 'old text', 't')",
                (collection.id,),
            )
            old.execute(
                "INSERT INTO api_keys (name, prefix, hash, collections, scopes, created_at) "
                "VALUES ('old-key', 'cw-x', 'h', '[\"*\"]', '[\"ask\"]', 't')"
            )
            assert "access" not in old.schema_version()[-1]
            old.close()
        for _ in range(2):
            new = open_storage(url, directory)
            assert any("access" in name for name in new.schema_version())
            old_id = new.sources(collection.id)["old"]
            assert new.document_access(old_id) == DocumentAccess(False, ())
            assert new.access_counts(collection.id) == {"open": 1, "restricted": 0}
            assert [(k.name, k.user) for k in list_keys(new)] == [("old-key", None)]
            new.close()


def test_addresses_are_one_reader_however_a_source_writes_them(store: Storage) -> None:
    """Case and Unicode compatibility forms fold: "Zoé@Example.com" at one source,
    "ZOÉ@EXAMPLE.COM" at another and a full-width ＠ typed into a form are one reader."""
    store.add_user("Zoé@Example.com")
    assert store.user("ZOÉ@example.COM") is not None
    collection = store.create_collection("folded", "test", DIM)
    write(store, collection.id, "upper", ("ZOÉ@EXAMPLE.COM",))
    write(store, collection.id, "fullwidth", ("zoé＠example.com",))
    write(store, collection.id, "other", ("zoe@example.com",))  # no accent: someone else
    readable = readable_documents(store, collection.id, store.identities("zoé@example.com"))
    sources = store.sources(collection.id)
    assert readable == {sources["upper"], sources["fullwidth"]}
