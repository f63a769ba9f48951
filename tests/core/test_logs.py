"""One log: every command takes -q/-v; progress is a bar on a terminal and plain lines
anywhere else (never a carriage return in a log file); -q silences it, -v adds debug."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from edge_deeplab import logs
from edge_deeplab.cli.common import verbosity
from edge_deeplab.cli.main import build_parser, main


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_delay(monkeypatch):
    """Progress lines from the first item (short test work would otherwise show none)."""
    monkeypatch.setattr(logs, "LINE_DELAY_S", 0.0)
    monkeypatch.setattr(logs, "BAR_DELAY_S", 0.0)


@pytest.fixture(autouse=True)
def restore_log():
    """A CLI run configures the package logger: leave it as the next test expects."""
    logger = logging.getLogger(logs.ROOT)
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


def _minimal_words(name: str, parser) -> list:
    """`name` with a stand-in for each required argument: enough to parse."""
    words = [name]
    for action in parser._actions:
        if not action.option_strings and action.nargs not in ("?", "*"):
            words.append("x")
        elif action.option_strings and action.required:
            words += [action.option_strings[0], "x"]
    return words


def test_every_subcommand_takes_quiet_and_verbose_after_its_name():
    root = build_parser()
    commands = root._subparsers._group_actions[0].choices
    assert len(commands) >= 12
    for name, parser in commands.items():
        words = _minimal_words(name, parser)
        got = {flag: verbosity(root.parse_args([*words, flag])) for flag in ("-q", "--quiet", "-v", "-vv", "--verbose")}
        assert got == {"-q": -1, "--quiet": -1, "-v": 1, "-vv": 2, "--verbose": 1}, name
        assert verbosity(root.parse_args(words)) == 0, name


@pytest.mark.parametrize("command", ["convert", "report"])
def test_a_commands_own_quiet_and_the_short_q_mean_the_same(command):
    """convert's and report's --quiet (their API's progress=False) stay; -q is their short form."""
    root = build_parser()
    words = _minimal_words(command, root._subparsers._group_actions[0].choices[command])
    assert root.parse_args(words).progress is True
    for flag in ("-q", "--quiet"):
        args = root.parse_args([*words, flag])
        assert args.progress is False and verbosity(args) == -1


def test_the_python_demo_entries_take_quiet_and_verbose(monkeypatch):
    from edge_deeplab.cli import demo_cmd

    seen = []
    monkeypatch.setattr(demo_cmd, "run_demo", lambda args: seen.append(verbosity(args)) or 0)
    for flag, level in (("-q", logging.WARNING), ("-v", logging.DEBUG)):
        assert demo_cmd.standalone_main(["model.tflite", flag], prog="demo", description="") == 0
        assert logging.getLogger(logs.ROOT).level == level
    assert seen == [-1, 1]


def _eval_log(tiny_run, tmp_path, monkeypatch, *flags) -> str:
    """`edge-deeplab eval` on the tiny run with stderr a log file; the file's text."""
    path = tmp_path / "eval.log"
    with open(path, "w", encoding="utf-8") as log_file, monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", log_file)
        assert main(["eval", str(tiny_run), "--limit", "16", *flags]) == 0
    return path.read_text(encoding="utf-8")


def test_a_log_file_gets_plain_progress_lines(tiny_run, tmp_path, monkeypatch, no_delay, capsys):
    text = _eval_log(tiny_run, tmp_path, monkeypatch)
    assert "evaluating: 8/16 images\nevaluating: 16/16 images\n" in text
    assert "\r" not in text and "DEBUG" not in text
    assert "mIoU" in capsys.readouterr().out  # the answer stays on stdout


def test_quiet_silences_progress_and_verbose_adds_debug(tiny_run, tmp_path, monkeypatch, no_delay):
    quiet = _eval_log(tiny_run, tmp_path, monkeypatch, "-q")
    assert "evaluating" not in quiet
    verbose = _eval_log(tiny_run, tmp_path, monkeypatch, "-v")
    assert "DEBUG edge_deeplab.cli.main: edge-deeplab" in verbose
    assert "INFO edge_deeplab.evaluation.evaluate: evaluating: 16/16 images" in verbose
    assert "\r" not in verbose


def test_a_terminal_gets_a_bar_with_the_log_lines_above_it(monkeypatch, no_delay):
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    logs.setup_logging(0)
    with logs.ProgressBar("working", 4, unit="images") as bar:
        bar.update(2)
        logging.getLogger("edge_deeplab.test").info("a note")
        bar.update(2)
    text = screen.getvalue()
    assert "\r" in text and "working:" in text and "2/4" in text  # tqdm's bar, redrawn in place
    assert "a note\n" in text and "working: 2/4" not in text  # the bar, not progress lines


def test_quiet_draws_no_bar_on_a_terminal(monkeypatch, no_delay):
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    logs.setup_logging(-1)
    with logs.ProgressBar("working", 4) as bar:
        bar.update(4)
    logging.getLogger("edge_deeplab.test").warning("still said")
    assert screen.getvalue() == "still said\n"


def test_lines_come_each_quarter_and_after_an_interval(monkeypatch, no_delay):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.setup_logging(0)
    with logs.ProgressBar("calibrating", 8) as bar:
        for _ in range(8):
            bar.update()
    assert stream.getvalue().splitlines() == [f"calibrating: {n}/8" for n in (2, 4, 6, 8)]
    stream.truncate(0), stream.seek(0)
    with logs.ProgressBar("slow work", None, interval_s=0.0) as bar:  # unknown total: by time only
        bar.update()
        bar.update()
    assert stream.getvalue().splitlines() == ["slow work: 1/?", "slow work: 2/?"]


def test_quick_work_writes_no_progress_lines(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(logs, "LINE_DELAY_S", 3600.0)
    logs.setup_logging(0)
    with logs.ProgressBar("instant", 4) as bar:
        bar.update(4)
    assert stream.getvalue() == ""


def test_progress_log_is_a_drop_in_say_with_counts(monkeypatch, no_delay):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.setup_logging(0)
    say = logs.ProgressLog(True, logging.getLogger("edge_deeplab.converters.job"))
    say("loading model.keras")
    tick = say.count("  calibrating (TFLite)", 4, every=2)
    for done in range(1, 5):
        tick(done)
    assert stream.getvalue().splitlines() == [
        "loading model.keras", "calibrating (TFLite): 2/4", "calibrating (TFLite): 4/4"]
    silent = logs.ProgressLog(False)
    silent("nothing")
    silent.count("nothing", 2)(2)
    assert stream.getvalue().count("nothing") == 0


def test_a_library_user_without_logging_set_up_sees_no_progress(monkeypatch, no_delay):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logger = logging.getLogger(logs.ROOT)
    logger.handlers[:], logger.propagate = [], True
    logger.setLevel(logging.NOTSET)
    with logs.ProgressBar("working", 2) as bar:
        bar.update(2)
    logs.ProgressLog()("a step")
    assert stream.getvalue() == ""


@pytest.mark.parametrize("stdout_tty, verbose, keras_verbose, epoch_lines", [
    (True, 1, 1, False),  # a terminal: Keras' own bar
    (False, 1, 0, True),  # a log file: no bar, one line per epoch
    (False, 0, 0, False),
    (True, 0, 0, False),
])
def test_keras_draws_its_bar_only_on_a_terminal(monkeypatch, stdout_tty, verbose, keras_verbose, epoch_lines):
    pytest.importorskip("tensorflow")
    from edge_deeplab.training.callbacks import EpochLog
    from edge_deeplab.training.train import _progress

    monkeypatch.setattr(sys, "stdout", _Terminal() if stdout_tty else io.StringIO())
    callbacks, got = _progress(["validation"], verbose)
    assert got == keras_verbose
    assert isinstance(callbacks[0], EpochLog) == epoch_lines and callbacks[-1] == "validation"


def test_the_epoch_line_names_its_metrics_and_time(logged):
    pytest.importorskip("tensorflow")
    from edge_deeplab.training.callbacks import EpochLog

    line = EpochLog()
    line.on_epoch_begin(2)
    line.on_epoch_end(2, {"loss": 0.5, "accuracy": 0.75, "val_miou": 0.1})
    assert len(logged) == 1 and logged[0].startswith("epoch 3: loss 0.5000  accuracy 0.7500  (")
    assert "val_miou" not in logged[0]
