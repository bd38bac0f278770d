"""Reading ``.npz`` archives from untrusted sources with every size checked before memory is
allocated.

``np.load`` trusts a file's headers: a 2.7 MB archive whose one member declares a
20000×20000×3 array decompresses to 1.2 GB, and reading the same member many times makes
as many copies. :class:`LimitedNpz` instead

* reads the zip directory and refuses archives with too many members, or whose declared
  uncompressed sizes exceed the per-member or total limit (zip headers are binding: Python's
  ``zipfile`` never returns more bytes than a member declares);
* reads each member's ``.npy`` header first and checks the dtype (no objects: nothing is
  unpickled), the declared shape and byte count against the limits and against the zip
  entry's size, *then* allocates and reads the array;
* reads each member at most once (repeated requests return the same array object), so the
  bytes a caller can make it hold are bounded by the total limit.

Example::

    with LimitedNpz(open("run.npz", "rb"), "run.npz", NpzLimits(max_total_bytes=256 << 20)) as z:
        crop = z.array("crop", max_shape=(4096, 4096, 3))
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import IO, Optional, Sequence

import numpy as np

__all__ = ["NpzLimits", "NpzLimitError", "LimitedNpz"]


class NpzLimitError(ValueError):
    """An archive or one of its arrays is larger than allowed, or its headers are inconsistent.
    The message names the member, what it declares and the limit."""


@dataclass(frozen=True)
class NpzLimits:
    """Limits for :class:`LimitedNpz`.

    Attributes:
        max_members: number of files in the archive.
        max_member_bytes: declared uncompressed size of one member (and of its array).
        max_total_bytes: sum of the declared uncompressed sizes of all members.
        max_header_bytes: size of one ``.npy`` header.
    """

    max_members: int = 20_000
    max_member_bytes: int = 128 << 20
    max_total_bytes: int = 256 << 20
    max_header_bytes: int = 10_000


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


class LimitedNpz:
    """A ``.npz`` archive read under :class:`NpzLimits` (see module docstring).

    Args:
        file: a binary file object (seekable) holding the archive.
        source: name used in messages (file name or ``"<upload>"``).
        limits: the limits.
    Raises:
        zipfile.BadZipFile: not a zip archive.
        NpzLimitError: too many members or too many declared bytes.
    """

    def __init__(self, file: IO[bytes], source: str, limits: NpzLimits = NpzLimits()):
        self.source = source
        self.limits = limits
        self._zip = zipfile.ZipFile(file)
        infos = self._zip.infolist()
        if len(infos) > limits.max_members:
            raise NpzLimitError(f"{source}: the archive holds {len(infos)} files; at most {limits.max_members} "
                                f"are accepted")
        self._info: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            if info.file_size > limits.max_member_bytes:
                raise NpzLimitError(f"{source}: member {info.filename!r} declares {_mb(info.file_size)} "
                                    f"uncompressed; the limit is {_mb(limits.max_member_bytes)} per array")
            total += info.file_size
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            self._info[name] = info
        if total > limits.max_total_bytes:
            raise NpzLimitError(f"{source}: the archive declares {_mb(total)} uncompressed; the limit is "
                                f"{_mb(limits.max_total_bytes)}")
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ access
    @property
    def files(self) -> list[str]:
        """Array names (``.npy`` suffix removed), in archive order."""
        return list(self._info)

    def __contains__(self, key: str) -> bool:
        return key in self._info

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "LimitedNpz":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_header(self, fp, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(fp)
            if version == (1, 0):
                return fmt.read_array_header_1_0(fp, max_header_size=self.limits.max_header_bytes)
            if version == (2, 0):
                return fmt.read_array_header_2_0(fp, max_header_size=self.limits.max_header_bytes)
            raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, EOFError) as e:
            raise NpzLimitError(f"{self.source}: member {key!r} is not a readable .npy array ({e})") from None

    def array(self, key: str, max_shape: Optional[Sequence[Optional[int]]] = None,
              max_bytes: Optional[int] = None) -> np.ndarray:
        """Read one array (once; later calls return the same array object).

        Args:
            key: array name.
            max_shape: optional bound per dimension (None = unbounded); the number of
                dimensions must match when given.
            max_bytes: optional tighter byte limit for this array.
        Raises:
            KeyError: no such member.
            NpzLimitError: object dtype, a shape or size over the limits, or a header that
                declares more data than the zip entry holds.
        """
        if key in self._cache:
            a = self._cache[key]
            self._check_shape(key, a.shape, max_shape)
            return a
        info = self._info[key]
        with self._zip.open(info) as fp:
            shape, fortran, dtype = self._read_header(fp, key)
            if dtype.hasobject:
                raise NpzLimitError(f"{self.source}: member {key!r} holds Python objects (it would need pickle); "
                                    f"only numeric, bool and string arrays are read")
            self._check_shape(key, shape, max_shape)
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            nbytes = count * dtype.itemsize
            limit = min(self.limits.max_member_bytes, max_bytes if max_bytes is not None else self.limits.max_member_bytes)
            if nbytes > limit:
                raise NpzLimitError(f"{self.source}: array {key!r} declares shape {tuple(shape)} ({_mb(nbytes)}); "
                                    f"the limit is {_mb(limit)}")
            if nbytes > info.file_size:
                raise NpzLimitError(f"{self.source}: array {key!r} declares shape {tuple(shape)} ({nbytes} bytes) "
                                    f"but its entry holds {info.file_size} bytes: the file is corrupt")
            data = bytearray(nbytes)
            view = memoryview(data)
            got = 0
            while got < nbytes:
                n = fp.readinto(view[got:])
                if not n:
                    raise NpzLimitError(f"{self.source}: array {key!r} is truncated ({got} of {nbytes} bytes)")
                got += n
        a = np.frombuffer(data, dtype=dtype, count=count)
        a = a.reshape(shape[::-1]).transpose() if fortran else a.reshape(shape)
        self._cache[key] = a
        return a

    def _check_shape(self, key: str, shape, max_shape) -> None:
        if max_shape is None:
            return
        if len(shape) != len(max_shape) or any(m is not None and s > m for s, m in zip(shape, max_shape)):
            bound = "×".join("any" if m is None else str(m) for m in max_shape)
            raise NpzLimitError(f"{self.source}: array {key!r} has shape {tuple(shape)}; at most {bound} is accepted")
