"""Language models: ``TextModel`` (task API), ``network`` (the LM), ``sampling`` (decoding)."""
from rnnkit.tasks.text.task import TextConfig, TextModel

__all__ = ["TextConfig", "TextModel"]
