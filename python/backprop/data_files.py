"""Data files for the command line: CSV (plain or gzipped), .npy and .npz tables, read into
features and a target column, and small text files written atomically.

A CSV file may start with a header row: it has one when its first row holds a field that is not
a number in a column whose other rows are all numbers, or when no field of the first row is a
number. The delimiter is a comma unless the first line has only semicolons or only tabs.
A .npy file holds one 2-D array of numbers (the target a column of it); a .npz file holds the
arrays X (samples x features) and y (one target per sample). The kind of a file is read from
its first bytes, not its name. Features are used as they are (not standardized).

Every problem is reported as a DataError (a ValueError) whose message names the file, and for a
CSV the line and column.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
# What numpy, zipfile and gzip raise on a damaged or unreadable array file.
_LOAD_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError)

# An integer target is taken as class labels when it has at most this many distinct values
# and at least _ROWS_PER_CLASS rows per value on average (any two-valued target is).
MAX_CLASSES = 100
_ROWS_PER_CLASS = 3


class DataError(ValueError):
    """A data file that cannot be used; the message names the file."""


# -- tables -------------------------------------------------------------------------------------


@dataclass
class Table:
    """One data file: CSV cells (strings) or an array of numbers, and column names if any."""

    source: str                       # the path, for messages
    kind: str                         # "csv", "npy" or "npz"
    names: Optional[list[str]]        # the header row (CSV) or None
    cells: Optional[np.ndarray]       # CSV: 2-D array of str
    numbers: Optional[np.ndarray]     # npy / npz: 2-D array of numbers (npz: X)
    lines: Optional[list[int]]        # CSV: the line number of each row
    y: Optional[np.ndarray] = None    # npz: the target array

    @property
    def n_rows(self) -> int:
        data = self.cells if self.cells is not None else self.numbers
        assert data is not None
        return int(data.shape[0])

    @property
    def n_columns(self) -> int:
        data = self.cells if self.cells is not None else self.numbers
        assert data is not None
        return int(data.shape[1])

    def describe_column(self, index: int) -> str:
        """'label' (index 64), or index 64 without a header."""
        if self.names is not None:
            return f"{self.names[index]!r} (index {index})"
        return f"index {index}"

    def column_index(self, target: str) -> int:
        """The column --target names: a header name, or an index (negative counts from the end)."""
        if self.names is not None and target in self.names:
            if self.names.count(target) > 1:
                raise DataError(f"{self.source}: the header names {target!r} more than once; "
                                "give --target as a column index")
            return self.names.index(target)
        try:
            index = int(target)
        except ValueError:
            if self.names is None:
                why = ("has no header row" if self.kind == "csv"
                       else f"is a .{self.kind} file, whose columns have no names")
                raise DataError(f"{self.source} {why}, so --target must be a column index "
                                f"(0 to {self.n_columns - 1}, or negative from the end); "
                                f"got {target!r}") from None
            shown = ", ".join(repr(name) for name in self.names[:8])
            more = f" and {len(self.names) - 8} more" if len(self.names) > 8 else ""
            raise DataError(f"{self.source} has no column {target!r} (its columns: "
                            f"{shown}{more})") from None
        if not -self.n_columns <= index < self.n_columns:
            raise DataError(f"{self.source} has {self.n_columns} columns, so a column index must "
                            f"be in {-self.n_columns}..{self.n_columns - 1}; got {index}")
        return index % self.n_columns

    def features(self, drop: Optional[int] = None) -> np.ndarray:
        """The columns other than `drop` as a 2-D float64 array of finite numbers."""
        keep = [j for j in range(self.n_columns) if j != drop]
        if not keep:
            raise DataError(f"{self.source} has no feature columns besides the target")
        values: Optional[np.ndarray]
        if self.numbers is not None:
            values = np.asarray(self.numbers[:, keep], dtype=np.float64)
            bad = np.argwhere(~np.isfinite(values))
            if bad.size:
                row, col = bad[0]
                raise DataError(f"{self.source}: row {row}, column index {keep[col]} is "
                                f"{values[row, col]}; features must be finite numbers")
            return np.ascontiguousarray(values)
        assert self.cells is not None
        part = self.cells[:, keep]
        try:
            values = part.astype(np.float64)
        except ValueError:
            values = None
        if values is None or not np.isfinite(values).all():
            self._report_bad_cell(part, keep)
        return np.ascontiguousarray(values)

    def column(self, index: int) -> np.ndarray:
        """One column as it is stored: str cells (CSV) or numbers."""
        if self.cells is not None:
            return np.char.strip(self.cells[:, index])
        assert self.numbers is not None
        return self.numbers[:, index]

    def _report_bad_cell(self, part: np.ndarray, keep: Sequence[int]) -> None:
        assert self.lines is not None
        for i in range(part.shape[0]):
            for j in range(part.shape[1]):
                cell = part[i, j]
                where = f"{self.source}: line {self.lines[i]}, column {self.describe_column(keep[j])}"
                if not cell.strip():
                    raise DataError(f"{where} is empty; missing values are not supported")
                number = _number(cell)
                if number is None:
                    raise DataError(f"{where}: {cell.strip()!r} is not a number (features must "
                                    "be numbers; only the target may hold text)")
                if not np.isfinite(number):
                    raise DataError(f"{where} is {cell.strip()!r}; features must be finite numbers")
        raise DataError(f"{self.source}: the features are not all finite numbers")


def read_table(path: PathLike) -> Table:
    """Read a CSV (optionally gzipped), .npy or .npz file; the kind is read from its first bytes."""
    source = os.fsdecode(os.fspath(path))
    with open(source, "rb") as handle:
        start = handle.read(8)
    if start.startswith(_NPY_MAGIC):
        return _read_npy(source)
    if start.startswith(_ZIP_MAGICS):
        return _read_npz(source)
    if start.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(source, "rb") as handle:
                raw = handle.read()
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{source} is a damaged gzip file ({error})") from None
        return _read_csv(source, raw)
    with open(source, "rb") as handle:
        return _read_csv(source, handle.read())


def _read_npy(source: str) -> Table:
    try:
        array = np.load(source, allow_pickle=False)
    except _LOAD_ERRORS as error:
        raise DataError(f"{source} is not a readable .npy array ({_first_line(error)})") from None
    if array.ndim != 2:
        raise DataError(f"{source} holds an array of shape {array.shape}; a .npy data file must "
                        "hold one 2-D array (samples x columns)")
    _require_numbers(array, source, "its array")
    _require_rows(array.shape[0], source)
    return Table(source, "npy", None, None, array, None)


def _read_npz(source: str) -> Table:
    try:
        with np.load(source, allow_pickle=False) as archive:
            files = set(archive.files)
            if "format" in files and "architecture" in files:
                raise DataError(f"{source} is a backprop model file, not a data file")
            if "X" not in files:
                raise DataError(f"{source} has no array 'X' (a .npz data file holds arrays X, "
                                f"the features, and y, the targets; it has "
                                f"{', '.join(sorted(files)) or 'none'})")
            x = archive["X"]
            y = archive["y"] if "y" in files else None
    except DataError:
        raise
    except _LOAD_ERRORS as error:
        raise DataError(f"{source} is not a readable .npz archive ({_first_line(error)})") from None
    if x.ndim != 2:
        raise DataError(f"{source}: X has shape {x.shape}; it must be 2-D (samples x features)")
    _require_numbers(x, source, "X")
    _require_rows(x.shape[0], source)
    if y is not None:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{source}: y has shape {y.shape}; it must hold one target per "
                            "sample (1-D)")
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{source}: X has {x.shape[0]} rows but y has {y.shape[0]}")
        if y.dtype.kind not in "biufU":
            raise DataError(f"{source}: y has dtype {y.dtype}; it must hold numbers or text labels")
    return Table(source, "npz", None, None, x, None, y)


def _require_numbers(array: np.ndarray, source: str, what: str) -> None:
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: {what} has dtype {array.dtype}; it must hold numbers")


def _require_rows(n_rows: int, source: str) -> None:
    if n_rows == 0:
        raise DataError(f"{source} has no data rows")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _read_csv(source: str, raw: bytes) -> Table:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{source} is not a CSV, .npy or .npz file (it is not UTF-8 text)") from None
    if "\x00" in text:
        raise DataError(f"{source} is not a CSV, .npy or .npz file (it holds NUL bytes)")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or all(not field.strip() for field in row):
                continue  # blank lines
            if rows and len(row) != len(rows[0]):
                raise DataError(f"{source}: line {reader.line_num} has {len(row)} fields; the "
                                f"first row has {len(rows[0])}")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as error:
        raise DataError(f"{source}: line {reader.line_num}: {error}") from None
    if not rows:
        raise DataError(f"{source} is empty")
    cells = np.array(rows, dtype=np.str_)
    names = None
    if _has_header(cells):
        names = [name.strip() for name in rows[0]]
        cells, lines = cells[1:], lines[1:]
    _require_rows(cells.shape[0], source)
    return Table(source, "csv", names, cells, None, lines)


def _delimiter(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," not in first:
        if ";" in first and "\t" not in first:
            return ";"
        if "\t" in first and ";" not in first:
            return "\t"
    return ","


def _number(cell: str) -> Optional[float]:
    try:
        return float(cell)
    except ValueError:
        return None


def _is_numeric_column(cells: np.ndarray) -> bool:
    try:
        cells.astype(np.float64)
    except ValueError:
        return False
    return True


def _has_header(cells: np.ndarray) -> bool:
    """Whether the first row names the columns (see the module's description)."""
    first = [_number(cell) is not None for cell in cells[0]]
    if not any(first):
        return True
    rest = cells[1:]
    return any(not numeric and _is_numeric_column(rest[:, j]) for j, numeric in enumerate(first))


# -- training data ------------------------------------------------------------------------------


@dataclass
class TrainingData:
    """Features and the raw target column of a data file."""

    X: np.ndarray                 # float64, samples x features
    y: np.ndarray                 # the target as stored: str cells, numbers or labels
    target_index: Optional[int]   # the target's column (None for .npz, where y is separate)
    target_name: Optional[str]    # the header name of the target column, if any
    n_columns: int                # the columns of the file (features + target)
    describe_target: str          # for messages: "column 'label' (index 64)", "array y"


def read_training_data(path: PathLike, target: Optional[str] = None) -> TrainingData:
    """The features and target of a data file; target names or indexes the target column
    (default: the last column). A .npz file gives its arrays X and y."""
    table = read_table(path)
    if table.kind == "npz":
        if target is not None:
            raise DataError(f"{table.source} is a .npz file holding X and y; --target does not "
                            "apply to it")
        if table.y is None:
            raise DataError(f"{table.source} has no array 'y' (the targets) next to X")
        return TrainingData(table.features(), table.y, None, None, table.n_columns, "array y")
    if table.n_columns < 2:
        raise DataError(f"{table.source} has {table.n_columns} column; training needs at least "
                        "one feature column and the target column")
    index = table.n_columns - 1 if target is None else table.column_index(target)
    name = None if table.names is None else table.names[index]
    return TrainingData(table.features(drop=index), table.column(index), index, name,
                        table.n_columns, f"column {table.describe_column(index)}")


@dataclass
class Target:
    """A target column made ready for a network: class ids or float values."""

    task: str                       # "classification" or "regression"
    y: np.ndarray                   # int64 class ids, or float64 values
    classes: Optional[list[str]]    # class names in id order (classification)
    reason: str                     # why the task was chosen, for the user


def encode_target(raw: np.ndarray, task: Optional[str] = None, *, source: str = "the data",
                  what: str = "the target") -> Target:
    """Class ids or values from a raw target column; task 'classification', 'regression', or
    None to choose: text, or integers with few distinct values, are classes; other numbers are
    values. Class ids number the sorted distinct labels (numbers sorted as numbers)."""
    if task not in (None, "classification", "regression"):
        raise ValueError(f"task must be 'classification', 'regression' or None; got {task!r}")
    where = f"{source}: {what}"
    values = _target_numbers(raw)
    if values is None:  # text labels
        if task == "regression":
            raise DataError(f"{where} holds text (e.g. {_first_text(raw)!r}); regression needs "
                            "numbers")
        labels = np.char.strip(raw.astype(np.str_))
        if (labels == "").any():
            line = int(np.flatnonzero(labels == "")[0])
            raise DataError(f"{where} is empty in data row {line + 1}; missing targets are not "
                            "supported")
        names, ids = np.unique(labels, return_inverse=True)
        chosen = task or "classification"
        reason = "given by --task" if task else "the target holds text labels"
        return _classes(chosen, ids, [str(name) for name in names], where, reason)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{where} is {values[row]} in data row {row + 1}; targets must be "
                        "finite numbers")
    integral = bool(np.all(values == np.round(values)))
    distinct = np.unique(values)
    if task is None:
        few = distinct.size <= 2 or (distinct.size <= MAX_CLASSES
                                     and distinct.size * _ROWS_PER_CLASS <= values.size)
        if integral and few:
            task, reason = "classification", (f"the target holds {distinct.size} distinct "
                                              "integers")
        else:
            task = "regression"
            reason = ("the target holds non-integer numbers" if not integral else
                      f"the target holds {distinct.size} distinct integers, too many for classes")
    else:
        reason = "given by --task"
    if task == "regression":
        return Target("regression", values.astype(np.float64), None, reason)
    if not integral:
        example = values[values != np.round(values)][0]
        raise DataError(f"{where} holds non-integer numbers (e.g. {example:g}); classification "
                        "needs integer or text labels")
    ids = np.searchsorted(distinct, values)
    return _classes(task, ids, [str(int(value)) for value in distinct], where, reason)


def _classes(task: str, ids: np.ndarray, names: list[str], where: str, reason: str) -> Target:
    if len(names) < 2:
        raise DataError(f"{where} has only one class ({names[0]!r}); classification needs at "
                        "least two")
    return Target(task, ids.astype(np.int64), names, reason)


def _target_numbers(raw: np.ndarray) -> Optional[np.ndarray]:
    """The target as float64 numbers, or None when any entry is text that is not a number."""
    if raw.dtype.kind in "biuf":
        return raw.astype(np.float64)
    try:
        return np.char.strip(raw.astype(np.str_)).astype(np.float64)
    except ValueError:
        return None


def _first_text(raw: np.ndarray) -> str:
    for cell in raw:
        if _number(str(cell)) is None:
            return str(cell).strip()
    return str(raw[0])


# -- prediction data ----------------------------------------------------------------------------


def read_features(path: PathLike, n_inputs: int, *, target: Optional[str] = None,
                  trained_target: Optional[str] = None,
                  trained_index: Optional[int] = None) -> tuple[np.ndarray, Optional[str]]:
    """The features of a data file for a model with n_inputs inputs, and a note naming the
    column left out, if any.

    With target, that column is left out. Otherwise a file with exactly one column more than
    the model's inputs leaves out the column the model was trained to predict (trained_target
    by name, else trained_index), or the last column.
    """
    table = read_table(path)
    columns = table.n_columns
    drop = None
    note = None
    if target is not None:
        drop = table.column_index(target)
        if columns - 1 != n_inputs:
            raise DataError(f"{table.source} has {columns} columns; without the target column "
                            f"{table.describe_column(drop)} that leaves {columns - 1}, but the "
                            f"model takes {n_inputs} inputs")
    elif columns == n_inputs + 1:
        if trained_target is not None and table.names is not None and trained_target in table.names:
            drop, why = table.names.index(trained_target), "the model's target"
        elif trained_index is not None and trained_index < columns:
            drop, why = trained_index, "the model's target column"
        else:
            drop, why = columns - 1, "the last column"
        note = (f"{table.source} has {columns} columns and the model takes {n_inputs} inputs; "
                f"leaving out column {table.describe_column(drop)}, {why} (choose another "
                "with --target)")
    elif columns != n_inputs:
        raise DataError(f"{table.source} has {columns} columns; the model takes {n_inputs} "
                        f"inputs (or {n_inputs + 1} columns with a target column to leave out)")
    return table.features(drop=drop), note


# -- writing ------------------------------------------------------------------------------------


def write_file_atomically(path: PathLike, write: Callable[[Any], None]) -> None:
    """Call write(binary file object) on a temporary file in path's folder, then move it into
    place with os.replace: an error or a crash never leaves a half-written file at path."""
    from .io import _copy_mode, _create_temporary, _sync_folder

    target = os.fsdecode(os.fspath(path))
    folder = os.path.dirname(target) or os.curdir
    temporary, handle = _create_temporary(folder, os.path.basename(target))
    try:
        with handle:
            _copy_mode(target, handle.fileno())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _sync_folder(folder)


def write_text_atomically(path: PathLike, text: str) -> None:
    """Write text (UTF-8) to path atomically."""
    write_file_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A CSV document (quoted where needed) of a header and rows."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


__all__ = ["DataError", "Table", "Target", "TrainingData", "csv_text", "encode_target",
           "read_features", "read_table", "read_training_data", "write_file_atomically",
           "write_text_atomically"]
