"""TinyTorch: the finished foundation the optimization katas (modules 15-20) build on.

Kept light on purpose: importing ``tinytorch`` loads the tensor engine and the layers, never the
kata switch (``tinytorch.perf``) or the CLI (``tinytorch.cli``).
"""

from tinytorch.tensor import Tensor, concatenate, is_grad_enabled, no_grad, stack, where

__all__ = ["Tensor", "concatenate", "is_grad_enabled", "no_grad", "stack", "where"]

# --- layers and models: re-exports added here by the layers helper (tinytorch.layers, conv,
# --- attention, transformer, losses, optim, ...). Plain imports, extend __all__ accordingly.
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
