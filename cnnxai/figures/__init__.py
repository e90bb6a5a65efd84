"""Figures: the explanation figure of GradLIME.py / CamLIME.py and the writer of one image's result
(:func:`save_explanation`), and one command per figure of the GradLIME / CamLIME papers (``Figures.py NAME``; the
catalogue is :data:`cnnxai.figures.catalog.FIGURES`, the application figures of
:mod:`cnnxai.figures.applications` among them)."""

from cnnxai.figures import applications  # noqa: F401  (registers the application figures on FIGURES)
from cnnxai.figures.explanation import explanation_figure, save_explanation
from cnnxai.figures.panels import superpixels_image

__all__ = ["explanation_figure", "save_explanation", "superpixels_image"]
