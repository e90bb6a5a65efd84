"""Benchmarks with ground truth: small models trained here on data generated from a seed, whose evidence lies at a
known place (the synthetic 2-D localisation benchmark) or is a known signal (MNIST-1D)."""
