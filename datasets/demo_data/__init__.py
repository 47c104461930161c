"""The demo data generator's parts (``datasets/generate_demo_data.py`` is the command).

- :mod:`.shapes`: polygon geometry, the class templates, :class:`~.shapes.Shape` and :func:`~.shapes.rasterize`;
- :mod:`.scenes`: scene composition (street scenes, indoor / outdoor scenes) from a random stream;
- :mod:`.rendering`: textures and the image renderer;
- :mod:`.cityscapes`, :mod:`.ade20k`, :mod:`.pascal_context`, :mod:`.coco`: one writer per format, each with a
  ``write_sample`` (one rendered scene into the format's files, no randomness) and a ``write`` (the split
  loop: scene, render, ``write_sample``, then the dataset's own preparation script).
"""
