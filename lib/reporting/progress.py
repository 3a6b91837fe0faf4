"""Live progress of running notebooks in the terminal: cell k of n, elapsed time, the inner progress bar.

Each notebook's kernel writes to <notebook>.progress.log (lib.reporting.execute: "[cell k/n]" lines;
lib.infra.runtime.progress: tqdm bars; lib.infra.runtime.notify: "[warning] ..." lines). A thread reads the new text of
every watched log twice a second. On a terminal one status line is redrawn in place; elsewhere (CI, a log file) a line
is printed when a notebook reaches a new cell, and its bar at most every 30 s. Warnings are printed as lines of their
own.
"""
import re
import shutil
import sys
import threading
import time


def _elapsed(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s" if m else f"{s}s"


class Watch:
    """One notebook's log: where we are in it, the cell and the last bar seen."""

    def __init__(self, name, log):
        self.name, self.log, self.pos, self.started = name, log, 0, time.time()
        self.cell, self.bar, self.partial, self.printed_cell, self.printed_bar = "", "", "", None, 0.0

    def read(self):
        """New complete lines of the log (warnings, cells, bars), and remember the newest bar."""
        try:
            with open(self.log, "r", errors="replace") as f:
                f.seek(self.pos)
                text = f.read()
                self.pos = f.tell()
        except OSError:
            return []
        *lines, partial = (self.partial + text).split("\n")
        self.partial = partial[partial.rfind("\r"):] if "\r" in partial else partial  # a bar being redrawn
        warnings = []
        for line in lines + [self.partial]:
            segments = [seg.strip() for seg in line.split("\r") if seg.strip()]
            last = segments[-1] if segments else ""
            cell = re.fullmatch(r"\[cell (\d+/\d+)\]", last)
            if cell:
                self.cell, self.bar = cell.group(1), ""
            elif last.startswith("[warning]"):
                if line is not self.partial:  # whole lines only
                    warnings.append(last[len("[warning]"):].strip())
            elif last.startswith("[detail]"):  # for the log's reader, not the terminal
                continue
            elif last:
                self.bar = last
        return warnings

    def status(self):
        cell = f"cell {self.cell}" if self.cell else "starting"
        return f"{self.name} {cell} {_elapsed(time.time() - self.started)}" + (f" | {self.bar}" if self.bar else "")


class Live:
    """Watch the progress logs of running notebooks; `say` prints a line without breaking the status line."""

    def __init__(self, stream=None, interval=0.5, quiet_every=30.0):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval, self.quiet_every = interval, quiet_every
        self.watches, self.lock, self.stop_event, self.thread = {}, threading.Lock(), threading.Event(), None
        self.drawn = False

    def __enter__(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()
        self.poll()
        self._clear()

    def add(self, name, log):
        with self.lock:
            self.watches[name] = Watch(name, log)

    def remove(self, name):
        with self.lock:
            watch = self.watches.pop(name, None)
        if watch:
            self._report(watch, watch.read())

    def say(self, line):
        with self.lock:
            self._clear()
            print(line, file=self.stream, flush=True)

    def _clear(self):
        if self.tty and self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False

    def _report(self, watch, warnings):
        for w in warnings:
            self.say(f"{watch.name}: warning: {w}")

    def poll(self):
        with self.lock:
            watches = list(self.watches.values())
        for watch in watches:
            self._report(watch, watch.read())
        if not watches:
            return
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            with self.lock:
                self.stream.write("\r\033[K" + " · ".join(w.status() for w in watches)[:width])
                self.stream.flush()
                self.drawn = True
            return
        now = time.time()
        for w in watches:
            if w.cell != w.printed_cell or (w.bar and now - w.printed_bar > self.quiet_every):
                w.printed_cell, w.printed_bar = w.cell, now
                self.say(w.status())

    def _loop(self):
        while not self.stop_event.wait(self.interval):
            self.poll()
