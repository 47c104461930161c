from . import backbone, heads, losses, distill, meta_arch  # noqa: F401
