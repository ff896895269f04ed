"""Module 18, compression: magnitude pruning, filter pruning that shrinks the model, CSR through the backend.

Files: ``magnitude.py`` (exact magnitude pruning of one array, layer-wise and global masks),
``pruning.py`` (a model's masks, held through fine-tuning; the sparsity report),
``structured.py`` (remove whole conv filters or hidden units, and shrink the consumer layer),
``sparse.py`` (CSR storage, the ``("matmul", "sparse")`` kernel, ``SparseLinear``). Import
everything from ``tinytorch.perf.compression``.
"""

from .magnitude import check_sparsity, check_weights, global_magnitude_masks, magnitude_mask, magnitude_prune
from .pruning import (
    PRUNABLE,
    SCOPES,
    MaskedOptimizer,
    SparsityReport,
    apply_masks,
    check_masks,
    fine_tune,
    prunable_weights,
    prune_model,
    sparsity_report,
)
from .sparse import CSRMatrix, SparseLinear, csr_matmul, register_sparse, sparse_backend, sparsify
from .structured import (
    CHANNELWISE,
    check_keep,
    conv_like,
    filter_norms,
    find_consumer,
    linear_like,
    prune_conv_filters,
    prune_filters,
    prune_linear_units,
    prune_neurons,
    prune_structured,
    shrink_conv_inputs,
    shrink_linear_inputs,
    unit_norms,
    units_to_keep,
)

__all__ = [
    "CHANNELWISE",
    "PRUNABLE",
    "SCOPES",
    "CSRMatrix",
    "MaskedOptimizer",
    "SparseLinear",
    "SparsityReport",
    "apply_masks",
    "check_keep",
    "check_masks",
    "check_sparsity",
    "check_weights",
    "conv_like",
    "csr_matmul",
    "filter_norms",
    "find_consumer",
    "fine_tune",
    "global_magnitude_masks",
    "linear_like",
    "magnitude_mask",
    "magnitude_prune",
    "prunable_weights",
    "prune_conv_filters",
    "prune_filters",
    "prune_linear_units",
    "prune_model",
    "prune_neurons",
    "prune_structured",
    "register_sparse",
    "shrink_conv_inputs",
    "shrink_linear_inputs",
    "sparse_backend",
    "sparsify",
    "sparsity_report",
    "unit_norms",
    "units_to_keep",
]
