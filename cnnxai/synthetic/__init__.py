"""Procedural data and the small models trained on it, below every user of them: the shapes of the localisation
benchmark (:mod:`~cnnxai.synthetic.shapes`) and their CNN (:mod:`~cnnxai.synthetic.shapes_model`), the scenes of
the detection and segmentation tasks (:mod:`~cnnxai.synthetic.scenes`) and their detector and segmenter
(:mod:`~cnnxai.synthetic.scene_models`), and the one training loop with its on-disk cache
(:mod:`~cnnxai.synthetic.training`, also MNIST-1D's). Everything is drawn from a seed, so a model trained here is
the same on every machine."""
