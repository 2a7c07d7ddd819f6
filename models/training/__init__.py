"""Training: the loop and its command line, targets, losses, distributed helpers, and checkpoint tools
(averaging, growing, the ablation driver)."""
