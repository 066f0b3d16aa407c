"""Model files: save a Network (and optionally its optimizer) to a versioned .npz, and load it back.

A model file is an uncompressed .npz (a zip of .npy arrays, so a C++ reader needs no zlib) that
holds no pickled data. Its members:

    format          0-d unicode array, "backprop-model"
    version         0-d int64 array, FORMAT_VERSION
    architecture    0-d unicode array: JSON with everything needed to rebuild the Network
    params          the flat parameter buffer, W_1 (fan_in x fan_out, row-major), b_1, W_2, b_2, ...
    optimizer       (optional) 0-d unicode array: JSON {"class", "settings", "steps", "n_state"}
    optimizer_state_0 .. optimizer_state_{n_state-1}
                    (optional) the optimizer's state buffers, laid out like params

A file is written to a temporary file in the target's folder and moved into place with
os.replace, so a crash or an error never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import math
import operator
import os
import secrets
import stat
import zipfile
import zlib
from typing import Any, Optional, Union

import numpy as np

from . import optim
from ._names import ACTIVATION_DEFAULT_ALPHA_OF as _unused  # noqa: F401  (placeholder, see below)
