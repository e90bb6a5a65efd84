"""Figures: the explanation figure of GradLIME.py / CamLIME.py and the writer of one image's result
(:func:`save_explanation`), and one command per figure of the GradLIME / CamLIME papers (``Figures.py NAME``; the
catalogue is :data:`cnnxai.figures.catalog.FIGURES`)."""

from cnnxai.figures.explanation import explanation_figure, save_explanation, superpixel_panel

__all__ = ["explanation_figure", "save_explanation", "superpixel_panel"]
