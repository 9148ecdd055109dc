"""Input and output: clips (``video``), images (``image``), synthetic clips with ground truth (``synthetic``),
trajectories (``trajectory``) and the track files users author (``tracks``), atomic output sets (``outputs``),
strict JSON and reports (``jsonio``), and the one validation kit naming field paths (``validate``)."""
