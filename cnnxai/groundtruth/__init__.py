"""Localisation.py: explanations scored against evidence whose place is known (the synthetic shapes and scenes of
:mod:`cnnxai.synthetic`, whose data and models live there), the run and its typed settings."""
