"""Localisation benchmark with ground truth: python Localisation.py (--help explains the options)."""

import sys

from cnnxai.groundtruth.cli import main

if __name__ == "__main__":
    sys.exit(main())
