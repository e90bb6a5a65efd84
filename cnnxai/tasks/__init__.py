"""Tasks beyond image classification whose model outputs the explainers can explain."""
