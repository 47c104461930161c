"""The parts of ``benchmarks/cost.py`` (the command): :mod:`.pairs` (the model pairs and their synthetic
inputs), :mod:`.steps` (:class:`~.steps.Bench`: the models of one pair and the items timed on them),
:mod:`.measurement` (the timing, memory and loader workers) and :mod:`.report` (tables and ratios)."""
