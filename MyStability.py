"""Stability benchmark: how many model forwards each LIME-family method needs for a stable, faithful explanation
(see docs/benchmarks.md#mystabilitypy and --help)."""

import sys

from cnnxai.commands import stability

if __name__ == "__main__":
    sys.exit(stability())
