"""Input and output: clips (``video``), synthetic clips with ground truth (``synthetic``) and trajectories
(``trajectory``)."""
