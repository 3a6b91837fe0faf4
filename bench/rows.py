"""One row of `make bench`'s summary table (bench/table.py), built the same way by every benchmark."""


def row(task, device, ours_s, peer_s, ours, peer, note="", estimated=False, **extra):
    """A dict: task, device, ours_s / peer_s (median seconds, or None), ratio = peer_s / ours_s (> 1: ours is
    faster; None where either time is missing), what ours and peer are, estimated (the peer extrapolated), note."""
    ratio = peer_s / ours_s if ours_s and peer_s else None
    return {"task": task, "device": device, "ours_s": ours_s, "peer_s": peer_s, "ratio": ratio, "ours": ours,
            "peer": peer, "estimated": estimated, "note": note, **extra}
