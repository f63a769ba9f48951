"""Training to a time budget, on a patched clock: slow and fast machines both finish their schedule."""

from __future__ import annotations

import json

import pytest

from edge_deeplab.config import DataConfig, ModelConfig, TrainConfig
from edge_deeplab.errors import InvalidInputError

pytest.importorskip("tensorflow")

STEPS = 3


def configs(**train):
    model = ModelConfig(num_classes=3, input_size=(32, 32), alpha=0.35, head_filters=8, decoder=False, dropout=0.0)
    data = DataConfig(num_classes=3, synthetic_train=16, synthetic_val=4, synthetic_size=(32, 32))
    return model, data, TrainConfig(batch_size=4, steps_per_epoch=STEPS, learning_rate=1e-3, **train)


class FakeClock:
    """Seconds that pass only when a training step or a validation is charged."""

    def __init__(self, step_s: float, val_s: float):
        self.t, self.step_s, self.val_s = 0.0, step_s, val_s


@pytest.fixture
def machine(monkeypatch):
    """Make training steps and validations take the fake time the test asks for."""
    from edge_deeplab.training import budget
    from edge_deeplab.training.callbacks import ValidationCallback

    def use(step_s: float, val_s: float) -> FakeClock:
        clock = FakeClock(step_s, val_s)
        monkeypatch.setattr(budget, "_now", lambda: clock.t)
        batch_end, val_end = budget.BudgetPlanner.on_train_batch_end, ValidationCallback.on_epoch_end

        def charged_step(self, batch, logs=None):
            clock.t += clock.step_s
            batch_end(self, batch, logs)

        def charged_validation(self, epoch, logs=None):
            before = len(self.history)
            val_end(self, epoch, logs)
            clock.t += clock.val_s * (len(self.history) - before)

        monkeypatch.setattr(budget.BudgetPlanner, "on_train_batch_end", charged_step)
        monkeypatch.setattr(ValidationCallback, "on_epoch_end", charged_validation)
        return clock

    return use


def _budget_run(tmp_path, name: str, **train_kwargs):
    from edge_deeplab.training import train

    model, data, cfg = configs(**train_kwargs)
    run = train(model, data, cfg, tmp_path / name, verbose=0)
    return json.loads((run / "history.json").read_text())


@pytest.mark.parametrize("step_s, val_s, at_least, at_most", [(8.0, 2.0, 1, 3), (2.5, 1.0, 5, 8)])
def test_a_budget_run_ends_its_schedule_within_the_budget(tmp_path, machine, step_s, val_s, at_least, at_most):
    """A 3-step epoch of 24 s (slow) or 7.5 s (fast) in a 60 s budget: the slow machine fits few
    epochs, the fast one many, and both end at the schedule's floor, validated, in time."""
    clock = machine(step_s, val_s)
    summary = _budget_run(tmp_path, "run", time_budget_s=60.0, warmup_epochs=1)
    budget = summary["time_budget"]
    epochs = len(summary["history"])
    assert at_least <= epochs <= at_most, budget["plans"]
    assert clock.t <= 60.0 and budget["elapsed_s"] <= 60.0
    assert budget["epochs_fit"] == budget["epochs_done"] == epochs and not budget["cut_short"]
    assert budget["schedule_fraction"] == 1.0
    assert budget["final_learning_rate"] == pytest.approx(budget["floor_learning_rate"], abs=1e-9)
    assert summary["optimizer_step"] == epochs * STEPS
    assert "val_miou" in summary["history"][-1], "the last epoch is validated"
    validated = [row for row in summary["history"] if row.get("val_miou") is not None]
    assert len(validated) * val_s <= 0.1 * 60.0 + val_s, "intermediate validations cost <= 10% of the budget"


def test_epochs_cap_a_budget_and_a_resumed_run_counts_the_time_already_spent(tmp_path, machine):
    """--epochs with --time-budget: as many epochs as fit, at most `epochs`, the schedule ending
    there; resumed without the cap, the run goes on with what is left of the same budget."""
    from edge_deeplab.training import train

    clock = machine(2.0, 1.0)
    model, data, cfg = configs(time_budget_s=24.0, epochs=2)
    run = train(model, data, cfg, tmp_path / "run", verbose=0)
    first = json.loads((run / "budget.json").read_text())
    assert first["epochs_fit"] == first["epochs_done"] == 2 and first["schedule_fraction"] == 1.0
    assert "at step 6" in first["schedule"] and first["spent_s"] == pytest.approx(clock.t)
    spent, clock.t = clock.t, 0.0  # a new process: its clock starts again
    train(model, data, cfg.replace(epochs=None), run, resume=True, verbose=0)
    total = json.loads((run / "budget.json").read_text())
    assert total["spent_s"] == pytest.approx(spent + clock.t) and total["spent_s"] <= 24.0
    assert total["epochs_done"] > 2 and total["schedule_fraction"] == 1.0 and not total["cut_short"]


class _Steps:
    def __init__(self):
        self.value = 0

    def numpy(self):
        return self.value


def _simulate(epoch_s, val_s: float, budget_s: float, steps: int = 10):
    """Drive a BudgetPlanner as `fit` would, without a model: epoch_s(epoch) -> its duration."""
    from types import SimpleNamespace

    from edge_deeplab.training import budget
    from edge_deeplab.training.optimizers import WarmupDecay

    clock = SimpleNamespace(t=0.0)
    budget._now, real_now = (lambda: clock.t), budget._now
    try:
        iterations, validation = _Steps(), SimpleNamespace(history=[], every=1, epochs=None)
        schedule = WarmupDecay(1e-3, decay_steps=steps * 20, warmup_steps=steps)
        planner = budget.BudgetPlanner(budget_s, 0.0, steps, 1000, schedule, validation, warmup_epochs=1,
                                       verbose=0)
        model = SimpleNamespace(optimizer=SimpleNamespace(iterations=iterations), stop_training=False)
        planner.set_model(model)
        planner.on_train_begin()
        for epoch in range(1000):
            planner.on_epoch_begin(epoch)
            for batch in range(steps):
                clock.t += epoch_s(epoch) / steps
                iterations.value += 1
                planner.on_train_batch_end(batch)
            planner.on_epoch_end(epoch)
            last = epoch + 1 >= validation.epochs or model.stop_training
            if last or (epoch + 1) % validation.every == 0:
                validation.history.append(epoch + 1)
                clock.t += val_s
            if model.stop_training:
                break
        planner.on_train_end()
        return planner.summary(), clock.t
    finally:
        budget._now = real_now


@pytest.mark.parametrize("epoch_s", [2.0, 7.0, 30.0, 95.0, 300.0])
def test_the_planner_fits_the_schedule_to_any_speed(epoch_s):
    """A 30-minute budget on machines 150x apart in speed: each ends its schedule inside it,
    the faster ones fitting proportionally more epochs, validations <= ~10% of the budget."""
    summary, elapsed = _simulate(lambda epoch: epoch_s, val_s=epoch_s / 3, budget_s=1800.0)
    assert elapsed <= 1800.0 and not summary["cut_short"], summary["plans"][-1]
    assert summary["schedule_fraction"] == 1.0 and summary["final_learning_rate"] == 0.0
    assert summary["epochs_done"] >= int(0.8 * 1800 / (epoch_s * 1.1 + epoch_s / 3)), summary["plans"][-1]


def test_a_slowdown_is_re_planned_and_a_late_one_is_flagged():
    """A machine that slows down 4x after epoch 5 of 20 s: re-planned to fewer epochs, it still
    ends its schedule in the budget. One that slows 10x in the last planned epoch overruns
    by that epoch and says its plan was cut short instead of claiming it went as planned."""
    summary, elapsed = _simulate(lambda epoch: 20.0 if epoch < 5 else 80.0, val_s=5.0, budget_s=600.0)
    assert elapsed <= 600.0 and not summary["cut_short"] and summary["schedule_fraction"] == 1.0
    assert summary["epochs_done"] < summary["plans"][0]["planned_epochs"]
    summary, elapsed = _simulate(lambda epoch: 20.0 if epoch < 22 else 200.0, val_s=5.0, budget_s=600.0)
    assert summary["cut_short"] and elapsed <= 600.0 + 200.0


def test_train_and_val_splits_are_both_read():
    from edge_deeplab.data.datasets import load_dataset, load_splits

    _, data, _ = configs()
    both = load_splits(data, data.replace(train_split="train,val").train_splits)
    train_ds, val_ds = load_dataset(data, "train"), load_dataset(data, "val")
    assert len(both) == len(train_ds) + len(val_ds) == 20
    assert both.names == train_ds.names + val_ds.names and both.split == "train+val"
    with pytest.raises(InvalidInputError, match="repeats"):
        data.replace(train_split="train,train")


def test_train_cli_reads_budgets_and_splits(tmp_path):
    from edge_deeplab.cli.main import build_parser
    from edge_deeplab.cli.train_cmd import build_configs

    args = build_parser().parse_args(["train", "--out", str(tmp_path / "r"), "--time-budget", "1.5h",
                                      "--train-splits", "train,val", "--lr-schedule", "cosine"])
    _, data, train_cfg, _ = build_configs(args)
    assert train_cfg.time_budget_s == 5400.0 and train_cfg.lr_schedule == "cosine"
    assert data.train_splits == ("train", "val") and train_cfg.epochs is None
    assert build_parser().parse_args(["train", "--time-budget", "90s"]).time_budget == 90.0
    assert build_parser().parse_args(["train", "--time-budget", "30"]).time_budget == 1800.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--time-budget", "soon"])


def test_cosine_and_poly_reach_the_floor_after_the_warm_up():
    from edge_deeplab.training.optimizers import WarmupDecay

    for shape in ("poly", "cosine"):
        schedule = WarmupDecay(1e-3, decay_steps=100, warmup_steps=10, shape=shape)
        assert float(schedule(0)) == pytest.approx(1e-4) and float(schedule(10)) == pytest.approx(1e-3)
        assert float(schedule(55)) < 1e-3 and float(schedule(100)) == 0.0
        schedule.set_steps(200, 10)  # a re-plan stretches it in place
        assert float(schedule(100)) > 0.0 and schedule.get_config()["decay_steps"] == 200
