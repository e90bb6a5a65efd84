"""Paper figures, one command each: python Figures.py NAME (python Figures.py --list names them)."""

import sys

from cnnxai.figures.cli import main

if __name__ == "__main__":
    sys.exit(main())
