import citewise


def test_public_surface_is_explicit_and_sorted() -> None:
    assert citewise.__all__ == sorted(citewise.__all__, key=lambda n: (n.startswith("_"), n))
    for name in citewise.__all__:
        assert hasattr(citewise, name), name
    public = {n for n in dir(citewise) if not n.startswith("_")}
    modules = {"answering", "chunking", "cli", "config", "demo", "documents", "embedders", "errors", "evaluation",
               "index", "ingest", "parsers", "plugins", "providers", "retrieval", "sources", "store", "workspace"}  # fmt: skip
    assert public - modules == set(citewise.__all__) - {"__version__"}
