"""Paper figures, one command each: python Figures.py NAME (python Figures.py --list names them)."""

import sys

from cnnxai.commands import figures

if __name__ == "__main__":
    sys.exit(figures())
