"""The instruments: evaluation suites (``moft evaluate``) and the metrics they score with.

Example:
    >>> from moft.eval.metrics import ssim
    >>> import numpy as np
    >>> float(ssim(np.zeros((2, 16, 16, 3)), np.zeros((2, 16, 16, 3))))
    1.0
"""
