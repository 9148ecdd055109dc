"""The front doors: ``control``, ``extract`` and ``locate`` in Python, their figures (``figures``), and the ``moft``
command (``cli``)."""
