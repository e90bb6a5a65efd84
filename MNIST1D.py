"""MNIST-1D explanations in one command: python MNIST1D.py (python MNIST1D.py --help lists the options)."""

import sys

from cnnxai.commands import mnist1d

if __name__ == "__main__":
    sys.exit(mnist1d())
