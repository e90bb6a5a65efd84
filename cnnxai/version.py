"""The suite's version (pyproject.toml's), at the bottom of the layers: ``cnnxai.__version__`` and every
manifest read it from here."""

__version__ = "0.1.0"
