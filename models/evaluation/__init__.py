"""Evaluation: COCO keypoint AP through pycocotools, score/quality rank correlation, and model speed."""
