"""Datasets for the foundation models: the UCI digits (shipped) and a synthetic sorting task."""

from tinytorch.data.digits import (
    DIGITS_FILE,
    NUM_CLASSES,
    SPLIT_SEED,
    SPLITS,
    TEST_FRACTION,
    load_digits,
    stratified_split,
)
from tinytorch.data.sequences import (
    DEFAULT_LENGTH,
    SEP,
    VOCAB,
    VOCAB_SIZE,
    SequenceTask,
    decode,
    encode,
    make_sequence_task,
    sequence_accuracy,
    token_accuracy,
)

__all__ = [
    "DEFAULT_LENGTH",
    "DIGITS_FILE",
    "NUM_CLASSES",
    "SEP",
    "SPLITS",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "VOCAB",
    "VOCAB_SIZE",
    "SequenceTask",
    "decode",
    "encode",
    "load_digits",
    "make_sequence_task",
    "sequence_accuracy",
    "stratified_split",
    "token_accuracy",
]
