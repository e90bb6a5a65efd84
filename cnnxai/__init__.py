"""The rest of the suite around lime_ext and cam_ext: models, preprocessing and the GradLIME/CamLIME pipeline."""

__version__ = "0.1.0"
