"""Importing ``apd`` imports every submodule cleanly and registers each object once.

Detectron2's ``Registry`` refuses a second registration of a name (an ``AssertionError`` "already
registered"), so "registers nothing twice" means: importing every submodule of ``apd``, in any
number, raises no such error, and every registered ``apd`` object sits under exactly one name, its own.
The last test checks that the guard is live: running a registering module's code a second time
(a fresh module object, as a second import under another path would) is refused.
"""
import gc
import importlib
import importlib.util
import pkgutil

import pytest
from detectron2.data import DatasetCatalog
from detectron2.utils.registry import Registry

import apd


def all_submodules():
    return sorted(m.name for m in pkgutil.walk_packages(apd.__path__, "apd."))


def apd_registrations():
    """[(registry name, registered name, object)] for every object of an ``apd`` module in any
    Detectron2 ``Registry`` alive in this process."""
    found = []
    # type() rather than isinstance(): isinstance on a dead weakref.proxy in gc.get_objects() raises ReferenceError
    for registry in [o for o in gc.get_objects() if issubclass(type(o), Registry)]:
        for name, obj in registry:
            if getattr(obj, "__module__", "").split(".")[0] == "apd":
                found.append((registry._name, name, obj))
    return found


def test_every_submodule_imports_and_each_object_is_registered_once_under_its_own_name():
    modules = all_submodules()
    assert "apd.modeling.heads.aux_head" in modules and "apd.export" in modules
    for name in modules:
        importlib.import_module(name)  # a duplicate registration would raise here
    registrations = apd_registrations()
    assert {name for registry, name, _ in registrations if registry == "META_ARCH"} >= {
        "Segmentor", "SemanticSegDistiller"}
    objects = [id(obj) for _, _, obj in registrations]
    assert len(objects) == len(set(objects)), f"an object is registered twice: {registrations}"
    assert all(name == obj.__name__ for _, name, obj in registrations), registrations


def test_importing_again_registers_no_dataset_twice():
    datasets = DatasetCatalog.list()
    assert len(datasets) == len(set(datasets))
    assert "pascal_context_59_sem_seg_val" in datasets
    from apd.data.datasets import register_all
    from apd.data.datasets.builtin import check_dataset_root  # noqa: F401  (module stays importable)

    assert register_all("/nonexistent/root") == []  # names already registered are left alone
    assert sorted(DatasetCatalog.list()) == sorted(datasets)


def test_a_second_run_of_a_registering_module_is_refused():
    registering = sorted({obj.__module__ for _, _, obj in apd_registrations()})
    assert "apd.modeling.meta_arch.segmentor" in registering
    for name in registering:
        spec = importlib.util.find_spec(name)
        module = importlib.util.module_from_spec(spec)  # not put into sys.modules
        with pytest.raises(AssertionError, match="already registered"):
            spec.loader.exec_module(module)
