"""Models of the suite: regular CNNs, their deformable (DCNv2) twins, and safe checkpoints.

* Layers: :class:`DeformConv2dBlock`, a drop-in ``nn.Conv2d`` that owns zero-initialised
  offset and modulation predictors (DCNv2, or DCNv1 with ``modulated=False``), so at
  initialisation it computes its regular convolution.
* Registry: :func:`build_model`, :func:`list_models`, :func:`get_model_info` (parameters and
  FLOPs), :func:`register_model`. Entries: ``mnist-cnn`` / ``mnist-cnn-dcnv2``,
  ``cifar-small`` / ``cifar-small-dcn``, ``resnet18-cifar`` and ``resnet34-cifar`` (with
  ``deformable_stages``), and ``pair-net`` (a siamese classifier of transformation pairs).
  A DCN twin is its regular builder with the convolution factory swapped; with the same
  seed both draw the same weights.
* Checkpoints: :func:`save_checkpoint` writes one ``.safetensors`` file with a
  :class:`CheckpointMeta`; :func:`load_checkpoint` rebuilds the model from it, or loads a
  plain state dict, and never unpickles arbitrary objects. Errors derive from
  :class:`CheckpointError` (a ``ValueError``).
* Training: :func:`train_classifier` and :func:`train_pairs` with a :class:`TrainConfig`
  (Adam, optional StepLR, a seeded validation split, augmentation from
  :func:`parse_augment`, resumable); reference checkpoints: :func:`list_refs`,
  :func:`resolve_ref` (``ref:NAME``).
"""

from ._augment import AugmentSpec, parse_augment
from ._checkpoint import load_checkpoint, save_checkpoint
from ._cifar_small import CifarSmall
from ._deform import DEFORM_IMPLS, DeformConv2dBlock, deform_kernels
from ._errors import (
    CheckpointClassCountError,
    CheckpointError,
    CheckpointFormatError,
    CheckpointMetadataError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    TrainingStateError,
    UnsafeCheckpointError,
)
from ._flops import count_flops, count_params
from ._meta import FORMAT_VERSION, CheckpointMeta
from ._mnist_cnn import MnistCnn
from ._pair_net import PairNet
from ._refs import RefInfo, list_refs, resolve_ref
from ._registry import (
    ModelInfo,
    build_model,
    get_model_info,
    list_models,
    model_spec,
    register_model,
)
from ._resnet_cifar import BasicBlock, ResNetCifar
from ._train_config import TrainConfig, TrainResult, channel_stats, split_indices
from ._train_loop import log_path, state_path
from ._train_pairs import evaluate_pairs, pair_class_names, train_pairs
from ._training import evaluate_accuracy, evaluate_scale_sweep, normalise, train_classifier

__all__ = [
    "DEFORM_IMPLS",
    "FORMAT_VERSION",
    "AugmentSpec",
    "BasicBlock",
    "CheckpointClassCountError",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointMeta",
    "CheckpointMetadataError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CifarSmall",
    "DeformConv2dBlock",
    "MnistCnn",
    "ModelInfo",
    "PairNet",
    "RefInfo",
    "ResNetCifar",
    "TrainConfig",
    "TrainResult",
    "TrainingStateError",
    "UnsafeCheckpointError",
    "build_model",
    "channel_stats",
    "count_flops",
    "count_params",
    "deform_kernels",
    "evaluate_accuracy",
    "evaluate_pairs",
    "evaluate_scale_sweep",
    "get_model_info",
    "list_models",
    "list_refs",
    "load_checkpoint",
    "log_path",
    "model_spec",
    "normalise",
    "pair_class_names",
    "parse_augment",
    "register_model",
    "resolve_ref",
    "save_checkpoint",
    "split_indices",
    "state_path",
    "train_classifier",
    "train_pairs",
]
