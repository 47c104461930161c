"""Data: dataset registrations (and, added by their owners, transforms and the dataset mapper)."""
from . import datasets  # noqa: F401  (registers PASCAL-Context)
