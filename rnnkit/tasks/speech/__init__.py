"""Speech to text: ``SpeechRecognizer`` (task API), ``network`` (conv + BiGRU + CTC), ``data``, ``ctc_decode``."""
from rnnkit.tasks.speech.task import SpeechConfig, SpeechRecognizer

__all__ = ["SpeechConfig", "SpeechRecognizer"]
