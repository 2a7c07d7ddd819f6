"""Inference: the ``Predictor`` (images in, ``Poses`` out), test-time views (flip, shift) and pose NMS."""
