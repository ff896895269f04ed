"""Module 17, quantization: INT8 with calibration, int32 accumulation through the backend.

Files: ``qparams.py`` (``choose_qparams``, ``quantize``, ``dequantize``, ``QuantizedTensor``),
``observers.py`` (``MinMaxObserver``, ``PercentileObserver``, ``calibrate``), ``layers.py``
(the ``("matmul", "int8")`` kernel ``int8_matmul``, ``int8_backend``, ``QuantizedLinear``,
``QuantizedConv2d``), ``model.py`` (``quantize_model``). Import everything from
``tinytorch.perf.quantization``; this file is not edited.
"""

from .layers import (
    CHUNK_K,
    MAX_K,
    QuantizedConv2d,
    QuantizedLinear,
    check_int8_operands,
    int8_backend,
    int8_matmul,
    int8_product,
    quantize_bias,
    weight_qparams,
)
from .model import PASS_THROUGH, check_rules, quantize_model, weight_bytes
from .observers import OBSERVERS, QUANTIZABLE, MinMaxObserver, PercentileObserver, calibrate, make_observer
from .qparams import (
    EPS,
    QMAX,
    QMIN,
    QuantizedTensor,
    QuantParams,
    check_float_data,
    choose_qparams,
    dequantize,
    quantize,
    quantize_tensor,
)

__all__ = [
    "EPS",
    "CHUNK_K",
    "MAX_K",
    "OBSERVERS",
    "PASS_THROUGH",
    "QMAX",
    "QMIN",
    "QUANTIZABLE",
    "MinMaxObserver",
    "PercentileObserver",
    "QuantParams",
    "QuantizedConv2d",
    "QuantizedLinear",
    "QuantizedTensor",
    "calibrate",
    "check_float_data",
    "check_int8_operands",
    "check_rules",
    "choose_qparams",
    "dequantize",
    "int8_backend",
    "int8_matmul",
    "int8_product",
    "make_observer",
    "quantize",
    "quantize_bias",
    "quantize_model",
    "quantize_tensor",
    "weight_bytes",
    "weight_qparams",
]
