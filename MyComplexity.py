"""Batch benchmark: the complexity metrics of explainers over an image folder (see README and --help)."""

import sys

from cnnxai.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main("complexity"))
