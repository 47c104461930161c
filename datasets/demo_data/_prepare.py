"""The preparation scripts next to the generator (``datasets/prepare_*.py``; that folder is not a package)."""
import importlib.util
import os

_DATASETS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare_script(name):
    """Import ``datasets/<name>.py``."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(_DATASETS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
