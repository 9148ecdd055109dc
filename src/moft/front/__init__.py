"""The front doors: ``control``, ``extract`` and ``locate`` in Python, what they show (``figures``, ``preview``,
``outcome``, ``defaults``), and the ``moft`` command (``cli``, started by ``launch``)."""
