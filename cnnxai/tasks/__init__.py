"""Explaining detection, segmentation and face models: each application is a target (what score of the model is
explained) on the one GradLIME / CamLIME composition (:mod:`cnnxai.targets`)."""
