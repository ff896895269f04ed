"""Shared hypothesis strategies for the kata test suites, one section per module.

One file, whole, as MiniTorch keeps its strategies: a strategy written for one module's edge cases
(constant tensors, single-sign data, empty rows, odd shapes, one-token prompts) is found and reused
by the next module's suite, and the imports stay in this header.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# ============================================================================================
# Module 16 (acceleration): matrix pairs for the matmul kernels
# ============================================================================================
# A case is drawn as shapes + a fill style + a seed and turned into arrays with a seeded
# generator: fast for 64x64 operands, readable when hypothesis prints a failing case, and the
# fill styles reach the traps (constant matrices, single-sign data with no cancellation, zero
# rows, mixed magnitudes, integer values where float32 arithmetic is exact).

MATMUL_FILLS = ("normal", "mixed_scale", "constant", "positive", "negative", "zero_rows", "integers")


@dataclass(frozen=True)
class MatmulCase:
    """A (M, K) @ (K, N) product to test, with the tile size for the blocked kernel."""

    m: int
    k: int
    n: int
    fill: str = "normal"
    seed: int = 0
    block_size: int = 64

    def operands(self, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        A = fill_matrix(rng, (self.m, self.k), self.fill, dtype)
        return A, fill_matrix(rng, (self.k, self.n), self.fill, dtype)


def fill_matrix(rng: np.random.Generator, shape: tuple[int, int], fill: str, dtype=np.float32) -> np.ndarray:
    """A matrix of ``shape`` filled in one of the ``MATMUL_FILLS`` styles."""
    if fill == "normal":
        x = rng.standard_normal(shape)
    elif fill == "mixed_scale":  # magnitudes from 1e-3 to 1e3, both signs: cancellation
        x = rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(-3, 3, shape)
    elif fill == "constant":
        x = np.full(shape, rng.uniform(-4, 4))
    elif fill == "positive":
        x = np.abs(rng.standard_normal(shape))
    elif fill == "negative":
        x = -np.abs(rng.standard_normal(shape))
    elif fill == "zero_rows":  # every other row zero, plus a zero first column
        x = rng.standard_normal(shape)
        x[::2] = 0.0
        x[:, :1] = 0.0
    elif fill == "integers":  # small integers: every float32 product and sum below 2**24 is exact
        x = rng.integers(-8, 9, shape).astype(np.float64)
    else:
        raise ValueError(f"unknown fill {fill!r}; one of {MATMUL_FILLS}")
    return x.astype(dtype)


@st.composite
def matmul_cases(
    draw,
    max_dim: int = 64,
    min_dim: int = 1,
    block_sizes: st.SearchStrategy[int] | None = None,
    max_tiles: int = 4096,
    fills: tuple[str, ...] = MATMUL_FILLS,
) -> MatmulCase:
    """Cases with dimensions in [min_dim, max_dim] and, when ``block_sizes`` is given, a tile size.

    The dimensions are capped at ``block_size * cbrt(max_tiles)`` so a tiny tile never makes the
    blocked kernel walk more than ``max_tiles`` tiles (the suite must stay fast).
    """
    block_size = draw(block_sizes) if block_sizes is not None else 64
    cap = max(min_dim, min(max_dim, block_size * int(round(max_tiles ** (1 / 3)))))
    dims = st.integers(min_dim, cap)
    return MatmulCase(
        m=draw(dims),
        k=draw(dims),
        n=draw(dims),
        fill=draw(st.sampled_from(fills)),
        seed=draw(st.integers(0, 2**32 - 1)),
        block_size=block_size,
    )


# ============================================================================================
# tensor (foundation): shapes, broadcasting pairs, reduction axes and float arrays
# ============================================================================================
# Used by tests/foundation/test_tensor.py (and the layer tests) for gradient checks. Arrays are
# small (at most 3 axes of at most 4) so finite-difference checks stay fast. Hypothesis often
# produces constant arrays (every element equal), single-sign arrays, size-1 axes and 0-d
# scalars: the edge cases of reductions and broadcasting.

TENSOR_MAX_DIMS = 3
TENSOR_MAX_SIDE = 4


def tensor_shapes(
    min_dims: int = 0, max_dims: int = TENSOR_MAX_DIMS, min_side: int = 1, max_side: int = TENSOR_MAX_SIDE
):
    """Array shapes, 0-d (``()``) included by default."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = TENSOR_MAX_DIMS):
    """Tuples of ``num_shapes`` shapes that broadcast together: missing leading axes and
    size-1 axes that stretch, on either side."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=TENSOR_MAX_SIDE
    ).map(lambda b: b.input_shapes)


def matmul_shapes():
    """Shape pairs numpy's ``@`` accepts: 1-D vectors, matrices, broadcast batch dimensions."""
    return hnp.mutually_broadcastable_shapes(
        signature=np.matmul.signature, max_dims=2, max_side=TENSOR_MAX_SIDE
    ).map(lambda b: b.input_shapes)


def reduction_axes(ndim: int):
    """An ``axis`` argument valid for an ``ndim``-d array: None, one axis (negative allowed) or a
    tuple of distinct axes (each possibly negative; the empty tuple included)."""
    if ndim == 0:
        return st.sampled_from([None, ()])
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - ndim]) for a in axes])
    )
    return st.none() | single | several


def float_arrays(shape, min_value: float = -3.0, max_value: float = 3.0, dtype=np.float64):
    """Finite float arrays of ``shape`` (a tuple or a strategy), elements in [min, max]."""
    width = np.dtype(dtype).itemsize * 8
    elements = st.floats(min_value, max_value, allow_nan=False, allow_subnormal=False, width=width)
    return hnp.arrays(dtype, shape, elements=elements)


def positive_arrays(shape, min_value: float = 0.1, max_value: float = 5.0, dtype=np.float64):
    """Float arrays with every element in [min_value, max_value] (inputs of log, sqrt, x ** p)."""
    return float_arrays(shape, min_value, max_value, dtype)


def nonzero_arrays(shape, min_abs: float = 0.5, max_abs: float = 3.0, dtype=np.float64):
    """Float arrays of both signs with min_abs <= |x| <= max_abs (denominators)."""
    width = np.dtype(dtype).itemsize * 8
    elements = st.floats(min_abs, max_abs, width=width) | st.floats(-max_abs, -min_abs, width=width)
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def broadcastable_array_pairs(draw, first=float_arrays, second=float_arrays):
    """Two float64 arrays whose shapes broadcast together; ``first``/``second`` map a shape to
    an array strategy (e.g. ``nonzero_arrays`` for a denominator)."""
    shape_a, shape_b = draw(broadcastable_shapes(2))
    return draw(first(shape_a)), draw(second(shape_b))


# ============================================================================================
# layers (foundation): convolution and pooling configurations, attention/GPT sequence splits
# ============================================================================================
# Used by tests/foundation/test_conv.py, test_attention.py and test_transformer.py. Sizes stay
# tiny (the reference implementations are Python loops). The conv configurations reach the
# traps: 1x1 and non-square kernels, stride larger than the kernel (skipped pixels), padding
# as large as the kernel, an input exactly the kernel's size (one output pixel), a single
# channel and a batch of one.


@dataclass(frozen=True)
class ConvCase:
    """Conv2d(c_in, c_out, (kh, kw), stride, padding) on an (n, c_in, h, w) input."""

    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kh: int
    kw: int
    stride: int = 1
    padding: int = 0
    seed: int = 0

    @property
    def out_hw(self) -> tuple[int, int]:
        return ((self.h + 2 * self.padding - self.kh) // self.stride + 1,
                (self.w + 2 * self.padding - self.kw) // self.stride + 1)


@st.composite
def conv_cases(draw, max_side: int = 7, max_kernel: int = 3, max_channels: int = 3) -> ConvCase:
    """Valid convolution configurations (the padded input is at least the kernel's size)."""
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    padding = draw(st.integers(0, max_kernel - 1))
    return ConvCase(
        n=draw(st.integers(1, 2)),
        c_in=draw(st.integers(1, max_channels)),
        c_out=draw(st.integers(1, max_channels)),
        h=draw(st.integers(max(1, kh - 2 * padding), max_side)),
        w=draw(st.integers(max(1, kw - 2 * padding), max_side)),
        kh=kh,
        kw=kw,
        stride=draw(st.integers(1, 3)),
        padding=padding,
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass(frozen=True)
class PoolCase:
    """MaxPool2d((kh, kw), stride) on an (n, c, h, w) input; ``fill`` "constant" makes every
    window a tie, "integers" makes ties common."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    stride: int
    fill: str = "normal"
    seed: int = 0

    def input(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        shape = (self.n, self.c, self.h, self.w)
        if self.fill == "constant":
            return np.full(shape, rng.uniform(-2, 2))
        if self.fill == "integers":
            return rng.integers(-2, 3, shape).astype(np.float64)
        return rng.standard_normal(shape)


@st.composite
def pool_cases(draw, max_side: int = 7, max_kernel: int = 3) -> PoolCase:
    """Valid pooling configurations: overlapping (stride < kernel), tiling and gapped windows."""
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    return PoolCase(
        n=draw(st.integers(1, 2)),
        c=draw(st.integers(1, 2)),
        h=draw(st.integers(kh, max_side)),
        w=draw(st.integers(kw, max_side)),
        kh=kh,
        kw=kw,
        stride=draw(st.integers(1, 3)),
        fill=draw(st.sampled_from(["normal", "integers", "constant"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def sequence_splits(draw, max_len: int = 8) -> tuple[int, list[int]]:
    """(T, cut points): a sequence length and sorted distinct cut points in [1, T - 1] that
    split it into consecutive chunks (no cut = one full forward; every cut = one token at a time)."""
    t = draw(st.integers(1, max_len))
    cuts = draw(st.lists(st.integers(1, max(1, t - 1)), unique=True, max_size=t - 1)) if t > 1 else []
    return t, sorted(cuts)


# ============================================================================================
# Module 15 (profiling): timing samples (the conv shapes come from the layers section)
# ============================================================================================
# Timing samples are durations: finite and >= 0. The traps: a single sample, constant samples
# (interpolating between equal values must give that value back exactly), spreads of fifteen
# orders of magnitude, zeros, and unsorted input that must not be sorted in place.

_DURATIONS = st.one_of(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1e-9, 1e-3, 0.1, 1.0, 1e6]),
)


def timing_samples(max_size: int = 200) -> st.SearchStrategy[list[float]]:
    """Non-empty lists of durations (seconds), including constant lists of any length."""
    constant = st.builds(lambda v, n: [v] * n, _DURATIONS, st.integers(1, max_size))
    return st.one_of(st.lists(_DURATIONS, min_size=1, max_size=max_size), constant)



# ============================================================================================
# Module 19 (caching): small random GPTs and ways to cut a sequence into chunks
# ============================================================================================
# A GPT is drawn as its shape and a seed and built by the test (hypothesis prints the shape).
# Chunkings reach the traps: the whole prompt at once, one token at a time, a one-token prompt
# followed by a long chunk (the mask offset matters only when a chunk of several positions
# follows a past), and chunks that fill the context exactly.


@dataclass(frozen=True)
class GPTShape:
    """The shape of a small random GPT (``GPT(**shape.kwargs(), rng=default_rng(seed))``)."""

    vocab_size: int = 7
    max_seq_len: int = 12
    embed_dim: int = 8
    n_heads: int = 2
    n_layers: int = 1
    seed: int = 0

    def kwargs(self) -> dict[str, int]:
        return {
            "vocab_size": self.vocab_size,
            "max_seq_len": self.max_seq_len,
            "embed_dim": self.embed_dim,
            "n_heads": self.n_heads,
            "n_layers": self.n_layers,
        }


@st.composite
def gpt_shapes(draw, max_seq_len: int = 12) -> GPTShape:
    """Tiny GPTs: 1-3 layers, 1-4 heads, embed_dim 4-16, vocabularies of 2-16 tokens.

    embed_dim >= 4: a LayerNorm over 2 or 3 features maps nearly equal features to +-1, so float32
    rounding can flip a sign there and no tolerance of rounding size holds."""
    n_heads = draw(st.integers(1, 4))
    return GPTShape(
        vocab_size=draw(st.integers(2, 16)),
        max_seq_len=draw(st.integers(1, max_seq_len)),
        embed_dim=n_heads * draw(st.integers(-(-4 // n_heads), 4)),
        n_heads=n_heads,
        n_layers=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**16)),
    )


@st.composite
def chunkings(draw, total: int) -> list[int]:
    """Positive chunk sizes that add up to ``total`` (>= 1), in order: a sequence cut into pieces."""
    cuts = draw(st.lists(st.integers(1, total - 1), unique=True, max_size=total - 1)) if total > 1 else []
    edges = [0, *sorted(cuts), total]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


# ============================================================================================
# Module 18 (compression): weight arrays to prune, and sparse matrices for the CSR kernel
# ============================================================================================
# Drawn as a shape + a fill style + a seed (like the matmul cases above). The fill styles reach
# the traps of magnitude pruning: ties ("constant": every |w| equal; "ties": few distinct
# magnitudes of both signs, so the threshold value is shared by many entries), weights that are
# already zero, and magnitudes over six orders. Sparsities include 0, 1 and the exact halves
# (k + 0.5) / n, where Python's round goes to the even neighbour. The CSR cases reach empty
# rows (first, last, runs of them), all-zero matrices, and a single row or column.

PRUNE_FILLS = ("normal", "ties", "constant", "with_zeros", "mixed_scale", "integers")


@dataclass(frozen=True)
class PruneCase:
    """An array of ``shape`` to prune at ``sparsity`` (a fraction in [0, 1])."""

    shape: tuple[int, ...]
    sparsity: float
    fill: str = "normal"
    seed: int = 0

    def weights(self, dtype=np.float32) -> np.ndarray:
        return prune_fill(np.random.default_rng(self.seed), self.shape, self.fill, dtype)


def prune_fill(rng: np.random.Generator, shape: tuple[int, ...], fill: str, dtype=np.float32) -> np.ndarray:
    """An array of ``shape`` filled in one of the ``PRUNE_FILLS`` styles."""
    if fill == "normal":
        x = rng.standard_normal(shape)
    elif fill == "ties":  # magnitudes in {0.5, 1, 1.5}, both signs: many entries share each |w|
        x = rng.choice([-1.5, -1.0, -0.5, 0.5, 1.0, 1.5], size=shape)
    elif fill == "constant":
        x = np.full(shape, rng.choice([-0.75, 0.75]))
    elif fill == "with_zeros":  # about a third already zero
        x = rng.standard_normal(shape) * (rng.random(shape) > 0.35)
    elif fill == "mixed_scale":
        x = rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(-3, 3, shape)
    elif fill == "integers":
        x = rng.integers(-3, 4, shape).astype(np.float64)
    else:
        raise ValueError(f"unknown fill {fill!r}; one of {PRUNE_FILLS}")
    return np.asarray(x, dtype=dtype)


def sparsities(n: int) -> st.SearchStrategy[float]:
    """Fractions in [0, 1] for an array of n entries: any float, the ends, the classic 0.5 / 0.7 /
    0.9, and exact halves (k + 0.5) / n where round(s * n) is a tie rounded to even."""
    halves = st.integers(0, max(0, n - 1)).map(lambda k: (k + 0.5) / n)
    return st.one_of(
        st.floats(0.0, 1.0, allow_nan=False),
        st.sampled_from([0.0, 1.0, 0.5, 0.7, 0.9]),
        halves,
    )


@st.composite
def prune_cases(draw, max_dims: int = 3, max_side: int = 9) -> PruneCase:
    """Shapes of 1 to ``max_dims`` axes (size-1 axes included), a fill style and a sparsity."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=1, max_side=max_side))
    n = int(np.prod(shape))
    return PruneCase(
        shape=tuple(shape),
        sparsity=draw(sparsities(n)),
        fill=draw(st.sampled_from(PRUNE_FILLS)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass(frozen=True)
class SparseCase:
    """A sparse (m, k) matrix A (about ``density`` nonzeros, some rows empty) and a dense (k, n) B."""

    m: int
    k: int
    n: int
    density: float = 0.3
    empty_rows: tuple[int, ...] = ()
    seed: int = 0

    def operands(self, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        A = rng.standard_normal((self.m, self.k)) * (rng.random((self.m, self.k)) < self.density)
        A[[r for r in self.empty_rows if r < self.m]] = 0.0
        B = rng.standard_normal((self.k, self.n))
        return A.astype(dtype), B.astype(dtype)


@st.composite
def sparse_cases(draw, max_dim: int = 12) -> SparseCase:
    """Sparse matrices of density 0 (all zero) to 1 (dense), with chosen empty rows."""
    m, k, n = (draw(st.integers(1, max_dim)) for _ in range(3))
    return SparseCase(
        m=m,
        k=k,
        n=n,
        density=draw(st.sampled_from([0.0, 0.05, 0.2, 0.5, 0.9, 1.0])),
        empty_rows=tuple(draw(st.lists(st.integers(0, m - 1), max_size=m, unique=True))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# ============================================================================================
# Module 17 (quantization): float arrays to quantize, observed ranges, quantized layer cases
# ============================================================================================
# An array is drawn as a shape + a fill style + a seed and built with a seeded generator. The
# fills reach the traps of INT8 quantization: single-sign data (the range must be widened to
# include 0; after a ReLU every activation is >= 0 and the zero point sits at -128), constants
# (the range has no width: never collapse to 0), all zeros (the scale floor), values from 1e-6
# to 1e4 (the scale spans many orders of magnitude), and one huge outlier among normal values
# (min/max calibration wastes the levels on it).

QUANT_FILLS = (
    "normal", "positive", "negative", "constant", "zeros", "tiny", "large", "mixed_scale", "outlier",
)


def fill_quant_array(rng: np.random.Generator, shape: tuple[int, ...], fill: str) -> np.ndarray:
    """A float32 array of ``shape`` in one of the ``QUANT_FILLS`` styles."""
    if fill == "normal":
        x = rng.standard_normal(shape)
    elif fill == "positive":  # a ReLU output: zeros and positive values
        x = np.maximum(rng.standard_normal(shape), 0.0) * rng.uniform(0.1, 10)
    elif fill == "negative":
        x = -np.abs(rng.standard_normal(shape)) - rng.uniform(0, 5)
    elif fill == "constant":
        x = np.full(shape, rng.choice([-1, 1]) * 10.0 ** rng.uniform(-6, 4))
    elif fill == "zeros":
        x = np.zeros(shape)
    elif fill == "tiny":
        x = rng.standard_normal(shape) * 1e-6
    elif fill == "large":
        x = rng.standard_normal(shape) * 1e4 + rng.uniform(-1e4, 1e4)
    elif fill == "mixed_scale":
        x = rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(-3, 3, shape)
    elif fill == "outlier":
        x = rng.standard_normal(shape)
        x.flat[rng.integers(x.size)] = rng.choice([-1, 1]) * 1e3
    else:
        raise ValueError(f"unknown fill {fill!r}; one of {QUANT_FILLS}")
    return x.astype(np.float32)


@dataclass(frozen=True)
class QuantArrayCase:
    """A float32 array to quantize: ``shape``, ``fill`` and ``seed``."""

    shape: tuple[int, ...]
    fill: str = "normal"
    seed: int = 0

    def array(self) -> np.ndarray:
        return fill_quant_array(np.random.default_rng(self.seed), self.shape, self.fill)


@st.composite
def quant_arrays(draw, max_dims: int = 3, max_side: int = 6, fills: tuple[str, ...] = QUANT_FILLS):
    """Cases of 1- to ``max_dims``-d arrays (every side in [1, max_side]) in the given fills."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=1, max_side=max_side))
    return QuantArrayCase(shape, draw(st.sampled_from(fills)), draw(st.integers(0, 2**32 - 1)))


@st.composite
def observed_ranges(draw) -> tuple[float, float]:
    """(min, max) with min <= max: either sign or both, widths from 0 to 1e8, magnitudes from 1e-30."""
    magnitudes = st.floats(1e-30, 1e4) | st.sampled_from([0.0, 1e-8, 1.0, 127.0, 255.0])
    a = draw(magnitudes) * draw(st.sampled_from([-1.0, 1.0]))
    b = draw(magnitudes) * draw(st.sampled_from([-1.0, 1.0]))
    return (min(a, b), max(a, b))


@dataclass(frozen=True)
class QLinearCase:
    """A (m, k) input to a Linear(k, n) with or without bias; input and weight fills."""

    m: int
    k: int
    n: int
    fill: str = "normal"
    weight_fill: str = "normal"
    bias: bool = True
    seed: int = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        rng = np.random.default_rng(self.seed)
        x = fill_quant_array(rng, (self.m, self.k), self.fill)
        w = fill_quant_array(rng, (self.k, self.n), self.weight_fill)
        b = rng.standard_normal(self.n).astype(np.float32) if self.bias else None
        return x, w, b


@st.composite
def qlinear_cases(draw, max_dim: int = 24) -> QLinearCase:
    """Linear layers of every small shape; inputs in every fill, weights in the non-degenerate ones."""
    dims = st.integers(1, max_dim)
    return QLinearCase(
        m=draw(dims),
        k=draw(dims),
        n=draw(dims),
        fill=draw(st.sampled_from(QUANT_FILLS)),
        weight_fill=draw(st.sampled_from(("normal", "mixed_scale", "positive", "constant", "zeros"))),
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# ============================================================================================
# Module 20 (benchmarking): speedups, timing samples and scale factors for the scoring laws
# ============================================================================================
# Speedups span six orders of magnitude (1e-3 .. 1e3: a thousand times slower to a thousand
# times faster) so the laws are checked far from 1; times are seconds from a microsecond to
# ten seconds; a scale factor models a faster or slower machine.

SPEEDUPS = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
SECONDS = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False, allow_infinity=False)
SCALE_FACTORS = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)


def speedup_lists(min_size: int = 1, max_size: int = 6) -> st.SearchStrategy[list[float]]:
    """One speedup per event, for 1 to 6 events."""
    return st.lists(SPEEDUPS, min_size=min_size, max_size=max_size)


@st.composite
def event_timings(draw, min_events: int = 1, max_events: int = 4) -> list[tuple[list[float], list[float]]]:
    """Per event, (baseline samples, candidate samples): 1 to 9 timed runs each, in seconds."""
    n = draw(st.integers(min_events, max_events))
    samples = st.lists(SECONDS, min_size=1, max_size=9)
    return [(draw(samples), draw(samples)) for _ in range(n)]
