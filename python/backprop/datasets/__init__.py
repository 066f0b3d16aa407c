"""Small data sets for training and testing networks, and a seeded train/test split.

Everything is generated in memory or read from a file shipped inside the package; nothing is
ever downloaded.

- ``load_digits``: 1,797 handwritten digits, 8x8 pixels. Optical recognition of handwritten
  digits (E. Alpaydin, C. Kaynak, 1998), the test part of the UCI Machine Learning Repository
  set 'Optical Recognition of Handwritten Digits', licence CC BY 4.0.
- ``xor``, ``parity``, ``symmetry``, ``encoder``: the binary-pattern tasks of Rumelhart,
  Hinton & Williams (1986).
- ``two_spirals``: Lang & Witbrock's two interleaved spirals (1988).
- ``train_test_split``: a seeded, stratified split.

All inputs and float targets are C-contiguous float32 or float64 arrays (``dtype``); class
labels are int64.
"""

from ._boolean import encoder, parity, symmetry, xor
from ._digits import load_digits
from ._spirals import two_spirals
from ._split import train_test_split

__all__ = [
    "encoder",
    "load_digits",
    "parity",
    "symmetry",
    "train_test_split",
    "two_spirals",
    "xor",
]
