"""Data: the synthetic people generator (images and clips), COCO-format datasets, augmentation, data paths."""
