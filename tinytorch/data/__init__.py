"""Datasets for the foundation models: the UCI digits (shipped), a synthetic sorting task and
Python's reference documentation as character-level text (shipped)."""

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
from tinytorch.data.text import (
    CHARS,
    TEXT_FILE,
    TEXT_SPLITS,
    TEXT_VOCAB_SIZE,
    decode_text,
    encode_text,
    load_text,
    load_topics,
    text_windows,
)

__all__ = [
    "CHARS",
    "DEFAULT_LENGTH",
    "DIGITS_FILE",
    "NUM_CLASSES",
    "SEP",
    "SPLITS",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "VOCAB",
    "VOCAB_SIZE",
    "TEXT_FILE",
    "TEXT_SPLITS",
    "TEXT_VOCAB_SIZE",
    "SequenceTask",
    "decode",
    "decode_text",
    "encode",
    "encode_text",
    "load_digits",
    "load_text",
    "load_topics",
    "make_sequence_task",
    "sequence_accuracy",
    "stratified_split",
    "text_windows",
    "token_accuracy",
]
