"""Batch benchmark: the faithfulness metrics of explainers over an image folder (see README and --help)."""

import sys

from cnnxai.commands import faithfulness

if __name__ == "__main__":
    sys.exit(faithfulness())
