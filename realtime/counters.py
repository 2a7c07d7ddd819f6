"""Counters that outlive their process: rows of int64 counters in a memory-mapped file.

A process killed by a signal (SIGKILL, an out-of-memory kill) cannot say what it counted since it was last asked.
A counter kept in a shared, file-backed mapping can: the kernel keeps the mapping's pages when the process dies,
so another process reads the last value written. ``CounterFile(path, rows, width)`` creates the file zeroed;
``row(i)`` is a writable ``memoryview`` of ``width`` int64 (native byte order), so ``row[0] += 1`` is a memory
write and no system call. ``read_counters(path, width)`` reads a file that another process wrote, alive or not.
Without a path the rows live in this process's memory only (the same interface, nothing outlives it).
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path

ITEM = 8  # bytes of one int64 counter


class CounterFile:
    def __init__(self, path: str | Path | None, rows: int, width: int = 3):
        self.path, self.rows, self.width = (Path(path) if path is not None else None), rows, width
        size = max(1, rows * width) * ITEM
        if self.path is None:
            self._map = mmap.mmap(-1, size)
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.ftruncate(fd, size)  # zero-filled
                self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            finally:
                os.close(fd)
        self._view = memoryview(self._map).cast("q")

    def row(self, index: int) -> memoryview:
        if not 0 <= index < self.rows:
            raise IndexError(f"row {index} of {self.rows}")
        return self._view[index * self.width:(index + 1) * self.width]

    def values(self) -> list[list[int]]:
        return [list(self.row(i)) for i in range(self.rows)]


def open_row(location: tuple[str, int, int] | None) -> memoryview:
    """Row ``index`` of the counter file at ``path`` made by another object of this process (``(path, index,
    width)``), mapped again; ``None``: a row of 4 in this process's memory only."""
    if location is None:
        return CounterFile(None, 1, 4).row(0)
    path, index, width = location
    fd = os.open(path, os.O_RDWR)
    try:
        mapped = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return memoryview(mapped).cast("q")[index * width:(index + 1) * width]


def read_counters(path: str | Path, width: int = 3) -> list[list[int]]:
    """The rows of a counter file as its writer left them."""
    data = memoryview(Path(path).read_bytes()).cast("q")
    return [list(data[i:i + width]) for i in range(0, len(data) - len(data) % width, width)]
