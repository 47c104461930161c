from .atomic import AtomicCheckpointer, atomic_torch_save  # noqa: F401
