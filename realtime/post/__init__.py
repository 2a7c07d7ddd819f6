"""Per-stream post-processing: the stage (``stage``: optional second NMS, then tracking and smoothing), the OKS
tracker (``tracking``) and One-Euro smoothing (``smoothing``)."""
