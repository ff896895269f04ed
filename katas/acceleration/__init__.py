"""Module 16, acceleration: naive, blocked and BLAS matmul, and a backend that dispatches by operand kind.

Files: ``matmul.py`` (the three kernels), ``conv2d.py`` (conv as im2col + one product),
``backend.py`` (``operand_kind``, ``call_kind``, ``OptimizedBackend``). Import everything from
``tinytorch.perf.acceleration``.
"""

from .backend import CSR_ATTRIBUTES, Kernel, OptimizedBackend, call_kind, operand_kind
from .conv2d import check_conv2d_args, conv2d_im2col
from .matmul import check_block_size, check_matmul_operands, matmul_blocked, matmul_naive, matmul_numpy

__all__ = [
    "CSR_ATTRIBUTES",
    "Kernel",
    "OptimizedBackend",
    "call_kind",
    "check_block_size",
    "check_conv2d_args",
    "check_matmul_operands",
    "conv2d_im2col",
    "matmul_blocked",
    "matmul_naive",
    "matmul_numpy",
    "operand_kind",
]
