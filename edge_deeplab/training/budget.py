"""Training to a wall-clock budget: the schedule spans the epochs that fit, re-planned as they are timed.

A fixed epoch count anneals only on a machine as fast as the one it was tuned on: on a
slower one the budget stops the run half-way, learning rate still high. Here the schedule's
length (in optimizer steps) is a variable that `BudgetPlanner` sets from measured times:
the first batches of the first epoch, then every epoch and every validation. Whatever the
machine, the last planned epoch ends at the schedule's floor and is followed by the final
validation and save, all within the budget.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from .. import deps
from ..imageio import atomic_write_text

keras = deps.keras()
_log = logging.getLogger(__name__)

BUDGET_FILE = "budget.json"  # in the run folder: what a resumed run has already spent
PROBE_BATCHES = 6  # batches timed in epoch 1 before the first plan (the first one traces)
VALIDATION_SHARE = 0.10  # of the budget at most spent on intermediate validations
MARGIN_SHARE = 0.03  # of the budget kept back for what timing cannot see


def _now() -> float:
    """The planner's clock (a module function, so tests can run it on a patched clock)."""
    return time.perf_counter()


class BudgetPlanner(keras.callbacks.Callback):
    """Sizes the run to `budget_s` seconds counted from `started` (a `_now()` reading).

    `val_ratio` guesses a validation's time as a share of an epoch's until one is timed.

    Each plan: the time left, less the final validation, the final save and a margin,
    divided by the measured epoch (plus its checkpoint) and the validations between, gives
    the epochs that fit; the schedule is stretched to end at the last of them. Validations
    are spaced so they cost at most VALIDATION_SHARE of the budget. Runs first among the
    callbacks: the stop it decides is seen by the validation of that same epoch.
    """

    def __init__(self, budget_s: float, started: float, steps_per_epoch: int, max_epochs: int, schedule,
                 validation, warmup_epochs: float = 0.0, min_val_every: int = 1, spent_before: float = 0.0,
                 state_file: Optional[Path] = None, val_ratio: float = 0.3, verbose: int = 1):
        super().__init__()
        self.budget_s, self.steps, self.max_epochs = float(budget_s), int(steps_per_epoch), int(max_epochs)
        self.schedule, self.validation, self.verbose = schedule, validation, verbose
        self.warmup_steps = round(warmup_epochs * self.steps)
        self.min_val_every, self.state_file, self.val_ratio = min_val_every, state_file, val_ratio
        self._origin = started - spent_before  # budget time runs on from a resumed run's spend
        self.epoch_s: List[float] = []
        self.gaps = {"validated": [], "plain": []}  # epoch end -> next epoch begin (validation, checkpoint)
        self.plans: List[dict] = []
        self.planned_epochs: Optional[int] = None
        self.cut_short = False
        self._batch_times: List[float] = []
        self._epoch_start = self._epoch_end = None
        self._validations_seen = 0
        self._done = 0

    def elapsed(self) -> float:
        return _now() - self._origin

    # -- timing ---------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._done = int(self.model.optimizer.iterations.numpy()) // self.steps

    def on_epoch_begin(self, epoch, logs=None):
        now = _now()
        if self._epoch_end is not None:
            validated = len(self.validation.history) > self._validations_seen
            self.gaps["validated" if validated else "plain"].append(now - self._epoch_end)
        self._validations_seen = len(self.validation.history)
        self._epoch_start = now
        self._batch_times = []

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch_s or self.planned_epochs is not None:
            return
        self._batch_times.append(_now())
        if len(self._batch_times) == min(PROBE_BATCHES, self.steps):
            self._plan(self._done, probe=True)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_end = _now()
        self.epoch_s.append(self._epoch_end - self._epoch_start)
        done = epoch + 1
        planned = self._plan(done)
        if done >= planned:
            self.model.stop_training = True
        self._save_state(done)

    # -- planning -------------------------------------------------------------------------

    def _epoch_estimate(self, probe: bool) -> float:
        if probe:  # mean step after the first (traced) one
            steps = np.diff(self._batch_times)
            step_s = float(np.mean(steps)) if len(steps) else (self._batch_times[0] - self._epoch_start)
            return step_s * self.steps
        # The first epoch carries the trace: leave it out once there are others. The latest
        # epoch alone when it was slower: a machine that slows down is planned for at once.
        recent = self.epoch_s[1:] if len(self.epoch_s) > 1 else self.epoch_s
        return max(float(np.mean(recent[-3:])), recent[-1])

    def _overheads(self, epoch_s: float):
        """(checkpoint, validation) seconds between epochs, measured or guessed."""
        plain = float(np.mean(self.gaps["plain"])) if self.gaps["plain"] else 0.02 * epoch_s
        validated = self.gaps["validated"]
        val = (float(np.mean(validated)) - plain) if validated else self.val_ratio * epoch_s
        return plain, max(val, 0.0)

    def _plan(self, done: int, probe: bool = False) -> int:
        epoch_s = self._epoch_estimate(probe)
        plain_s, val_s = self._overheads(epoch_s)
        # What the last epoch is followed by: a validation, a checkpoint and the final save.
        reserve = val_s + 3 * plain_s + MARGIN_SHARE * self.budget_s
        left = self.budget_s - self.elapsed() - reserve
        if probe:  # the current epoch's remaining batches
            left -= epoch_s * (1 - len(self._batch_times) / self.steps)
        base = done + 1 if probe else done  # the epoch being probed will be done too
        fit = max(0, int(left // (epoch_s + plain_s)))
        every = self._val_every(base + fit, val_s)
        while fit and fit * (epoch_s + plain_s) + self._validations_between(base, fit, every) * val_s > left:
            fit -= 1
        planned = max(1, min(self.max_epochs, base + fit))
        if self.planned_epochs is not None and self.planned_epochs > done >= planned:
            self.cut_short = True  # slower than planned: the run stops here, short of its plan
        self._apply(planned, every)
        self.plans.append({"after_epoch": done, "probe": probe, "epoch_s": round(epoch_s, 2),
                           "validation_s": round(val_s, 2), "planned_epochs": planned, "val_every": every,
                           "elapsed_s": round(self.elapsed(), 1)})
        return planned

    def _val_every(self, epochs: int, val_s: float) -> int:
        if val_s <= 0 or epochs <= 1:
            return self.min_val_every
        validations = max(1, int(VALIDATION_SHARE * self.budget_s // val_s))
        return max(self.min_val_every, math.ceil(epochs / validations))

    @staticmethod
    def _validations_between(base: int, fit: int, every: int) -> int:
        """Validations after epochs base .. base+fit-1 (the one after the last is reserved)."""
        return sum(1 for e in range(base, base + fit) if e and e % every == 0)

    def _apply(self, planned: int, every: int) -> None:
        if planned != self.planned_epochs and self.verbose and self.planned_epochs is not None:
            _log.info(f"time budget: re-planned to {planned} epochs (was {self.planned_epochs})")
        self.planned_epochs = planned
        total = planned * self.steps
        self.schedule.set_steps(total, min(self.warmup_steps, total // 2))
        self.validation.every, self.validation.epochs = every, planned

    # -- record ---------------------------------------------------------------------------

    def on_train_end(self, logs=None):
        self._save_state(int(self.model.optimizer.iterations.numpy()) // self.steps)
        if self.verbose:
            _log.info(self.summary_line())

    def summary(self) -> dict:
        step = int(self.model.optimizer.iterations.numpy())
        total, warm = self.schedule.steps()
        fraction = (step - warm) / max(1, total - warm)
        return {
            "budget_s": self.budget_s, "elapsed_s": round(self.elapsed(), 1),
            "epochs_fit": self.planned_epochs, "epochs_done": step // self.steps,
            "schedule": self.schedule.describe(), "schedule_fraction": round(min(1.0, fraction), 4),
            "final_learning_rate": float(self.schedule(step)), "floor_learning_rate": self.schedule.floor,
            "cut_short": self.cut_short, "plans": self.plans,
        }

    def summary_line(self) -> str:
        s = self.summary()
        last = self.plans[-1] if self.plans else {}
        return (f"time budget {s['budget_s'] / 60:.1f} min: {s['epochs_fit']} epochs fit "
                f"({last.get('epoch_s', 0):.0f} s each, validation {last.get('validation_s', 0):.0f} s every "
                f"{last.get('val_every', 1)}); schedule {s['schedule']}, {100 * s['schedule_fraction']:.0f}% done, "
                f"final lr {s['final_learning_rate']:.2g}; {s['elapsed_s'] / 60:.1f} min used"
                + ("; CUT SHORT: the machine slowed down after the plan" if s["cut_short"] else ""))

    def _save_state(self, done: int) -> None:
        if self.state_file is not None:
            state = {"spent_s": self.elapsed(), "epochs_done": done, **self.summary()}
            atomic_write_text(self.state_file, json.dumps(state, indent=2))


def spent_before(state_file: Path) -> float:
    """Seconds of budget a run folder's earlier sessions used (0 for a new run)."""
    try:
        return float(json.loads(Path(state_file).read_text())["spent_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
