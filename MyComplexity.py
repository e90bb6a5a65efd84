"""Batch benchmark: the complexity metrics of explainers over an image folder (see README and --help)."""

import sys

from cnnxai.commands import complexity

if __name__ == "__main__":
    sys.exit(complexity())
