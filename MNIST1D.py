"""MNIST-1D explanations in one command: python MNIST1D.py (python MNIST1D.py --help lists the options)."""

import sys

from cnnxai.signal1d.cli import main

if __name__ == "__main__":
    sys.exit(main())
