"""A file that reaches the disk in whole pieces: what is written is held in memory until ``commit()``, which hands
it to the OS in one ``write()`` call (a loop only if the OS takes less). A process killed at any moment (SIGKILL,
out-of-memory kill, ``docker kill``) leaves the file ending on a commit boundary, because the kernel keeps what
earlier calls wrote. A failed commit (disk full, file size limit) is undone: the file is cut back to the end of
the last whole commit and the error is raised.

The MP4 sink commits after every packet, which in a fragmented MP4 is when the muxer has just finished a fragment
(moof + mdat): the file on disk is always a playable run of whole fragments. The JSONL sink commits after every
line: every line on disk is whole. (A power cut is another matter: what the kernel had not yet written is lost.)

PyAV writes through ``write``/``seek``/``tell`` like any Python file object.
"""
from __future__ import annotations

import os
from pathlib import Path


class WholeWrites:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pending = bytearray()
        self.size = 0  # bytes on disk in whole commits
        self.pos = 0   # where the next write lands (pending included)

    def write(self, data) -> int:
        self.pending += data
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Commits what is pending, then moves (the MP4 muxer seeks back only at its end, if at all)."""
        self.commit()
        self.pos = os.lseek(self.fd, offset, whence)
        return self.pos

    def commit(self) -> None:
        """Writes everything pending in one call; on failure the file is cut back to its last whole commit."""
        if not self.pending:
            return
        start = os.lseek(self.fd, 0, os.SEEK_CUR)
        view, self.pending = memoryview(bytes(self.pending)), bytearray()
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            if start >= self.size:  # appending: nothing half-written stays behind
                os.ftruncate(self.fd, self.size)
                os.lseek(self.fd, self.size, os.SEEK_SET)
            self.pos = os.lseek(self.fd, 0, os.SEEK_CUR)
            raise
        self.size = max(self.size, os.lseek(self.fd, 0, os.SEEK_CUR))

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        """Commits what is pending and closes; the descriptor is closed even when the commit fails."""
        if self.fd < 0:
            return
        try:
            self.commit()
        finally:
            os.close(self.fd)
            self.fd = -1
