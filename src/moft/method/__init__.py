"""The method: capture features (``capture``) -> MOFT (``features``, ``channels``) -> a target (``targets``,
``inversion``, ``drag``) -> the guided sampler (``sampler``, ``shared_kv``)."""
