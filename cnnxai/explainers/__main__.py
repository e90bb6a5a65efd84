"""``python -m cnnxai.explainers --list``: the registered explainers, one per line with a description, and the
options each declares (set them with ``--explainer-option NAME.KEY=VALUE`` on any command line)."""

from __future__ import annotations

import argparse

from cnnxai.explainers import REGISTRY
from cnnxai.registry import listing


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cnnxai.explainers", description=__doc__)
    parser.add_argument(
        "--list", action="store_true", help="print the registered explainers and their options"
    )
    args = parser.parse_args()
    if not args.list:
        parser.print_help()
        return
    print(listing(REGISTRY))


if __name__ == "__main__":
    main()
