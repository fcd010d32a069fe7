"""The three classic tutorial examples, done right: model, data and training for each.

- :mod:`rnnkit.tutorials.sine`: 100 relu units learn the next value of sin(t).
- :mod:`rnnkit.tutorials.count`: one recurrent unit maps [1..5] -> [6..10] and extrapolates.
- :mod:`rnnkit.tutorials.names_i2h`: the classic ``i2h``/``i2o`` RNN classifies surnames by origin.

``examples/*.py`` are thin scripts over these; ``rnnkit.demo.tutorials`` adds plots for
``rnnkit demo``; ``tests/test_examples.py`` checks the thresholds on the same code.
"""
