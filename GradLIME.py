"""GradLIME: explain CNN image classifiers with LIME + class-activation priors. Run with --help for the options."""

import sys

from cnnxai.commands import gradlime

if __name__ == "__main__":
    sys.exit(gradlime())
