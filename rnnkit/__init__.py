"""rnnkit: recurrent neural networks that work out of the box."""
__version__ = "0.1.0"
