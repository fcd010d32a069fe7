"""Sequence classification: ``SequenceClassifier`` (task API), ``network``, ``data`` (encoding), ``ensemble``."""
from rnnkit.tasks.classify.task import ClassifierConfig, SequenceClassifier

__all__ = ["ClassifierConfig", "SequenceClassifier"]
