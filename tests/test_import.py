import importlib


def test_package_imports_and_registers_nothing_twice():
    apd = importlib.import_module("apd")
    # A second import must be a no-op (registries refuse duplicate names).
    assert importlib.reload(importlib.import_module("apd.modeling")) is not None
    assert apd.__version__
