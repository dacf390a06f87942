import inspect

import citewise


def test_public_surface_is_explicit_and_sorted() -> None:
    assert citewise.__all__ == sorted(citewise.__all__, key=lambda n: (n.startswith("_"), n))
    for name in citewise.__all__:
        assert hasattr(citewise, name), name
    public = {
        n
        for n, value in vars(citewise).items()
        if not n.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(citewise.__all__) - {"__version__"}
