"""Localisation benchmark with ground truth: python Localisation.py (--help explains the options)."""

import sys

from cnnxai.commands import localisation

if __name__ == "__main__":
    sys.exit(localisation())
