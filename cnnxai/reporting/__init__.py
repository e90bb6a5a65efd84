"""Reporting, above the runs: the tables, plots and statistics summaries of a benchmark's, a stability run's and a
localisation run's rows (:mod:`~cnnxai.reporting.summary`, :mod:`~cnnxai.reporting.stability`), the writers
that turn a finished run into its output folder (:mod:`~cnnxai.reporting.benchmark`,
:mod:`~cnnxai.reporting.localisation`), and report.html (:mod:`~cnnxai.reporting.html`). Everything here reads
what a run left (rows, manifests, gallery maps, result objects) and computes nothing of a model."""
