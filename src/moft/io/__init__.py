"""Input and output: clips (``video``), synthetic clips with ground truth (``synthetic``), trajectories
(``trajectory``), atomic files and output sets (``outputs``), strict JSON and reports (``jsonio``) and the field
checks every JSON-like input goes through (``validate``)."""
