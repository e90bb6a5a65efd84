"""MyStability.py: the stability and faithfulness of LIME-family explanations against their number of model forwards.

``specs`` parses method specs (``gradlime[prior_strength=10]``), ``measures`` holds top-k Jaccard, Kendall's tau and
the curves' area, ``curves`` the cached superpixel deletion/insertion curves, ``runner`` the resumable run into
rows.csv, ``cli`` the command line; the tables (summary, forwards_to_match) and the figure are the reporting
layer's (:mod:`cnnxai.reporting.stability`).
"""
