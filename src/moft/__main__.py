"""``python -m moft``: the ``moft`` command (``moft.front.launch``)."""

from moft.front.launch import main

if __name__ == "__main__":
    main()
