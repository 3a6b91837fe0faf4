"""What a model's test curve says (the test figure lib.learn.train records after every epoch, meta["test_history"]):
where it would reach a published figure if it went on as it did."""
import numpy as np


def epochs_to_reach(curve, target, first=2):
    """The epoch at which a falling test curve (one value per epoch, epoch 1 first) would reach `target` if it went on
    as the power law log(value) = a + b log(epoch) fitted by least squares to its epochs >= `first`: a rough
    extrapolation, for saying how far a profile's training is from a published figure. None where fewer than two
    epochs are fitted or the fit does not fall; the last epoch where the curve is already at or below `target`."""
    values = np.asarray(curve, dtype=float)
    if len(values) and values[-1] <= target:
        return float(len(values))
    epochs = np.arange(1, len(values) + 1)
    keep = epochs >= first
    if keep.sum() < 2:
        return None
    b, a = np.polyfit(np.log(epochs[keep]), np.log(values[keep]), 1)
    return float(np.exp((np.log(target) - a) / b)) if b < 0 else None


def reach_note(trained, target, whose):
    """A sentence on when the test curve of `trained` (meta["test_history"]) would reach `whose` figure `target`
    (epochs_to_reach, and the minutes at the speed it was trained); '' where there is no target."""
    if target is None:
        return ""
    at = epochs_to_reach(trained.meta.get("test_history", []), target)
    if at is None:
        return f" Its test curve does not fall steadily enough to extrapolate to {whose} {target:g}."
    minutes = at * trained.meta["train_seconds"] / trained.meta["config"]["epochs"] / 60
    return (
        f" Its own test curve, extrapolated as a power law, reaches {whose} {target:g} after about {at:,.0f} epochs "
        f"(about {minutes:,.0f} min of training at the speed it was trained)."
    )
