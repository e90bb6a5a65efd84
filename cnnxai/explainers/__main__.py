"""``python -m cnnxai.explainers --list``: the registered explainers, one per line, with a description."""

from __future__ import annotations

import argparse

from cnnxai.explainers import REGISTRY


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cnnxai.explainers", description=__doc__)
    parser.add_argument("--list", action="store_true", help="print the registered explainers")
    args = parser.parse_args()
    if not args.list:
        parser.print_help()
        return
    width = max(map(len, REGISTRY))
    for name, spec in REGISTRY.items():
        print(f"{name:<{width}}  {spec.description}")


if __name__ == "__main__":
    main()
