"""Weights published by others, converted into project checkpoints (``qem import``): DEKR's (``dekr``)."""
