"""Writing a file atomically: a temporary file beside it, renamed over it, with the mode a plain `open` gives.

`tempfile.mkstemp` creates its file with mode 0600 whatever the umask, so a report or a cache written through it
would be readable by its owner only; `atomic_write` gives the file 0666 minus the umask, as `open` does.
"""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def umask():
    """The process's umask (read from /proc where it can be, else by setting and restoring it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path, mode="w", sync=False):
    """Yield a file open for writing (`mode` "w" or "wb") that replaces `path` whole when the block ends without
    an error (fsync'ed first if `sync`); on an error `path` is untouched and the temporary file removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
