"""The instruments: evaluation suites (``moft evaluate``) and the metrics they score with.

``suite`` (the suite files, checked before any model loads), ``runner`` (items, work folders,
shards), ``objects`` (the synthetic-object protocol's coloured objects), ``scoring`` (one row per
generated video, the summary table), ``metrics`` (the measurements) and ``point_drag`` (the
point-drag suite).

Example:
    >>> from moft.eval.metrics import ssim
    >>> import numpy as np
    >>> float(ssim(np.zeros((2, 16, 16, 3)), np.zeros((2, 16, 16, 3))))
    1.0
"""
