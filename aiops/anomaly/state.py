"""Per-series detector state: a few fixed-size numpy arrays, to and from a JSON-able dict or bytes.

`SeriesState` is one series' state; `StateBatch` stacks many (a leading series axis on every array) so
the live path updates thousands of series with one numpy operation per step.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1
_MAGIC = b"OPAD"


@dataclass
class SeriesState:
    """One series' state for the detector named `detector` (arrays keyed by name; scalars have shape ())."""

    detector: str
    arrays: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        """Samples seen so far."""
        return int(self.arrays["count"])

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())

    def copy(self) -> SeriesState:
        return SeriesState(self.detector, {name: array.copy() for name, array in self.arrays.items()})

    def to_dict(self) -> dict:
        """JSON-able: lists of numbers, None for NaN (a slot never seen), strings for infinities."""
        return {
            "detector": self.detector,
            "version": FORMAT_VERSION,
            "arrays": {name: _jsonable(array) for name, array in self.arrays.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> SeriesState:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"anomaly state version {data.get('version')!r}; expected {FORMAT_VERSION}")
        arrays = {}
        for name, value in data["arrays"].items():
            dtype = np.int64 if name == "count" else float
            arrays[name] = np.array(_from_jsonable(value), dtype=dtype)
        return cls(str(data["detector"]), arrays)

    def to_bytes(self) -> bytes:
        """A compact binary form: a JSON header (detector, names, shapes) then the raw little-endian arrays."""
        names = sorted(self.arrays)
        header = json.dumps(
            {
                "detector": self.detector,
                "version": FORMAT_VERSION,
                "arrays": [[name, list(self.arrays[name].shape), self.arrays[name].dtype.str] for name in names],
            }
        ).encode()
        body = b"".join(np.ascontiguousarray(self.arrays[name]).astype(self.arrays[name].dtype.newbyteorder("<"))
                        .tobytes() for name in names)  # fmt: skip
        return _MAGIC + struct.pack("<I", len(header)) + header + body

    @classmethod
    def from_bytes(cls, data: bytes) -> SeriesState:
        if data[:4] != _MAGIC:
            raise ValueError("not an anomaly detector state")
        (length,) = struct.unpack("<I", data[4:8])
        header = json.loads(data[8 : 8 + length])
        if header.get("version") != FORMAT_VERSION:
            raise ValueError(f"anomaly state version {header.get('version')!r}; expected {FORMAT_VERSION}")
        offset = 8 + length
        arrays = {}
        for name, shape, dtype_str in header["arrays"]:
            dtype = np.dtype(dtype_str)
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            arrays[name] = np.frombuffer(data[offset : offset + size], dtype=dtype).reshape(shape).astype(
                dtype.newbyteorder("="))  # fmt: skip
            offset += size
        return cls(str(header["detector"]), arrays)


@dataclass
class StateBatch:
    """Many series' states for one detector, stacked: every array has a leading axis of len(self)."""

    detector: str
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.arrays["count"])

    @classmethod
    def stack(cls, states: list[SeriesState]) -> StateBatch:
        if not states:
            raise ValueError("no states to stack")
        names = {state.detector for state in states}
        if len(names) > 1:
            raise ValueError(f"states of different detectors: {sorted(names)}")
        keys = states[0].arrays.keys()
        return cls(states[0].detector, {key: np.stack([s.arrays[key] for s in states]) for key in keys})

    def __getitem__(self, index: int) -> SeriesState:
        return SeriesState(self.detector, {key: array[index].copy() for key, array in self.arrays.items()})

    def select(self, rows: np.ndarray) -> StateBatch:
        """A new batch of copies of the states at `rows`."""
        return StateBatch(self.detector, {key: array[rows] for key, array in self.arrays.items()})

    def assign(self, rows: np.ndarray, other: StateBatch) -> None:
        """Put the states of `other` (of len(rows)) at `rows`."""
        if other.detector != self.detector or len(other) != len(rows):
            raise ValueError("assign needs a batch of the same detector with one state per row")
        for key, array in self.arrays.items():
            array[rows] = other.arrays[key]

    def unstack(self) -> list[SeriesState]:
        return [self[i] for i in range(len(self))]

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())


def _jsonable(array: np.ndarray):
    if array.dtype.kind in "iu":
        return array.tolist()
    flat = [None if np.isnan(v) else ("inf" if v == np.inf else "-inf" if v == -np.inf else float(v))
            for v in array.ravel().tolist()]  # fmt: skip
    return flat[0] if array.ndim == 0 else flat


def _from_jsonable(value):
    def one(v):
        if v is None:
            return np.nan
        if v == "inf":
            return np.inf
        if v == "-inf":
            return -np.inf
        return v

    return [one(v) for v in value] if isinstance(value, list) else one(value)
