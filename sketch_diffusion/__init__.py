"""The library under ``train.py``, ``evaluate.py`` and ``app.py``: data, training, evaluation, release and the
Sketch-RNN baseline. What a Hub folder carries (the diffusers pipeline, the model, the stroke representation and
rendering) lives in the ``pipeline`` package.
"""
