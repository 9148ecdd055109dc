"""moft: training-free motion interpretation and control in video diffusion models."""
