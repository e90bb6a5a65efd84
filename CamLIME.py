"""CamLIME: explain CNN image classifiers with LIME + class-activation priors. Run with --help for the options."""

import sys

from cnnxai.commands import camlime

if __name__ == "__main__":
    sys.exit(camlime())
