"""Tasks beyond classification with ground truth: procedural scenes, and small models trained on them here."""
