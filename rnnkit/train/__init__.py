"""rnnkit's one training engine: :class:`Trainer` + :class:`TrainConfig`, and the model-folder format."""
from rnnkit.train.checkpoint import load_model, load_state_into, save_model
from rnnkit.train.threads import torch_threads
from rnnkit.train.tensors import detach, to_device
from rnnkit.train.trainer import History, Trainer, TrainConfig, seed_everything, unwrap

__all__ = ["Trainer", "TrainConfig", "History", "save_model", "load_model", "load_state_into",
           "seed_everything", "to_device", "detach", "unwrap", "torch_threads"]
