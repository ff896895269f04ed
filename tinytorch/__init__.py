"""TinyTorch: the finished foundation the optimization katas (modules 15-20) build on.

Two rooms share the name. The foundation is every module here but two sub-packages: the tensor
engine (``tensor.py``), the layers and models, losses, optimisers, training, serialization, the
matmul hook (``backend.py``), data and the model zoo; it imports nothing but numpy, the standard
library and itself. ``tinytorch.perf`` is the switch that serves each kata module, and
``tinytorch.course`` is the machinery that runs the course (registry, runner, CLI, pytest plugin,
leaderboard). Importing ``tinytorch`` loads the foundation only. docs/ARCHITECTURE.md draws the
rooms and the imports allowed between them; tests/machinery/test_architecture.py checks them.
"""

from tinytorch.tensor import Tensor, concatenate, is_grad_enabled, no_grad, stack, where

__all__ = ["Tensor", "concatenate", "is_grad_enabled", "no_grad", "stack", "where"]

# the layers, models, losses, optimisers and training loop, under their short names
from tinytorch.attention import MultiHeadAttention, scaled_dot_product_attention  # noqa: E402
from tinytorch.conv import Conv2d, MaxPool2d  # noqa: E402
from tinytorch.layers import (  # noqa: E402
    GELU,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    Module,
    ReLU,
    Sequential,
    Softmax,
    manual_seed,
)
from tinytorch.losses import cross_entropy, mse_loss  # noqa: E402
from tinytorch.optim import SGD, Adam  # noqa: E402
from tinytorch.serialization import load_weights, save_weights  # noqa: E402
from tinytorch.training import accuracy, evaluate, fit  # noqa: E402
from tinytorch.transformer import GPT, TransformerBlock  # noqa: E402

__all__ += [
    "GELU",
    "GPT",
    "SGD",
    "Adam",
    "Conv2d",
    "Dropout",
    "Embedding",
    "Flatten",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "Module",
    "MultiHeadAttention",
    "ReLU",
    "Sequential",
    "Softmax",
    "TransformerBlock",
    "accuracy",
    "cross_entropy",
    "evaluate",
    "fit",
    "load_weights",
    "manual_seed",
    "mse_loss",
    "save_weights",
    "scaled_dot_product_attention",
]
