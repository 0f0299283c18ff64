"""Training: tasks, label-smoothed loss, learning-rate schedules, checkpoints and the loop."""

from qkv.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from qkv.training.loss import Loss, label_smoothed_cross_entropy
from qkv.training.schedule import Schedule
from qkv.training.tasks import LanguageModelTask, TranslationTask
from qkv.training.trainer import TrainConfig, TrainResult, evaluate_loss, train

__all__ = ["Checkpoint", "LanguageModelTask", "Loss", "Schedule", "TrainConfig", "TrainResult",
           "TranslationTask", "evaluate_loss", "label_smoothed_cross_entropy", "load_checkpoint",
           "save_checkpoint", "train"]
