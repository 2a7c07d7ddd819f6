"""The network: backbones, dense heads, the Query Encoding Module (KQE, PQE) and keypoint snapping."""
