"""The method: capture features (``capture``) -> MOFT (``features``, ``channels``) -> a target (``targets``,
``inversion``, ``drag``; one dispatch in ``control_target``; point tracks in ``points``) -> the guided sampler
(``sampler``, its settings in ``settings``, ``shared_kv``, and ``keep``: what it leaves unchanged)."""
