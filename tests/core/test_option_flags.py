"""An option is declared once, on its options field: the convert/report flags are built from them."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from edge_deeplab.bench.report import BenchOptions, ReportOptions
from edge_deeplab.cli.main import build_parser
from edge_deeplab.cli.option_flags import add_option_flags, options_from_args
from edge_deeplab.converters import ConvertOptions
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.options import cli_fields, option


@pytest.mark.parametrize("command, options_cls", [
    (["convert", "run", "--to", "tflite", "--out", "o"], ConvertOptions),
    (["report", "run", "--out", "o"], ReportOptions),
    (["report", "run", "--out", "o"], BenchOptions),
])
def test_every_option_field_is_a_flag_with_the_fields_default(command, options_cls):
    args = build_parser().parse_args(command)
    fields = cli_fields(options_cls)
    assert fields and all(hasattr(args, f.name) for f in fields)
    assert options_from_args(options_cls, args) == options_cls()  # the flags' defaults are the API's


def test_flags_reach_the_options_parsed_and_checked():
    args = build_parser().parse_args([
        "convert", "run", "--to", "tflite", "--out", "o", "--size", "96x128", "--head", "argmax",
        "--quiet", "--val-limit", "8", "--int8-agreement", "0.9", "--strict"])
    options = options_from_args(ConvertOptions, args)
    assert (options.size, options.head, options.progress, options.val_limit) == ((96, 128), "argmax", False, 8)
    assert options.int8_agreement == 0.9 and options.strict
    args = build_parser().parse_args(["report", "run", "--out", "o", "--scales", "0.75,1", "--min-time", "0.5",
                                      "--runtimes", "onnxruntime,openvino", "--threads", "0"])
    assert options_from_args(BenchOptions, args).min_time_s == 0.5
    with pytest.raises(InvalidInputError, match="--threads"):  # the options check themselves
        options_from_args(ReportOptions, args)
    with pytest.raises(SystemExit):  # a choice outside the field's is a usage error
        build_parser().parse_args(["convert", "run", "--to", "tflite", "--out", "o", "--head", "mask"])


def test_a_new_option_field_is_a_new_flag():
    """Adding an option to the options dataclass is all it takes to get its flag."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        frames: int = option(30, "frames to keep")
        mode: str = option("fast", "how", choices=("fast", "exact"))
        verbose: bool = option(True, "say less", flag="--silent", inverted=True)

    parser = argparse.ArgumentParser()
    add_option_flags(parser, Options)
    assert "frames to keep (default 30)" in parser.format_help()
    args = parser.parse_args(["--frames", "5", "--mode", "exact", "--silent"])
    assert options_from_args(Options, args) == Options(frames=5, mode="exact", verbose=False)


def test_train_flags_take_their_defaults_from_the_configs():
    """A train flag's shown default is its config field's; left out, it leaves the config as it is."""
    from edge_deeplab.cli.train_cmd import build_configs
    from edge_deeplab.cli.train_flags import GROUPS
    from edge_deeplab.config import AugmentConfig, DataConfig, ModelConfig, TrainConfig

    defaults = {f.name: f.default for cls in (ModelConfig, DataConfig, TrainConfig, AugmentConfig)
                for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    defaults["epochs"] = TrainConfig().epoch_limit  # None in the config: DEFAULT_EPOCHS without a budget
    shared = [f for _, flags in GROUPS[1:] for f in cli_fields(flags) if f.name in defaults and f.default is not None]
    assert len(shared) > 15 and all(f.default == defaults[f.name] for f in shared)
    model, data, train, _ = build_configs(build_parser().parse_args(["train"]))
    assert (model, data, train) == (ModelConfig(), DataConfig(), TrainConfig())


@pytest.mark.parametrize("command", [["train"], ["demo"], ["convert"], ["report"]])
def test_every_flag_shows_its_default_at_most_once(command):
    parser = build_parser()._subparsers._group_actions[0].choices[command[0]]
    helps = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings and a.help}
    twice = {flag: text for flag, text in helps.items() if text.count("(default") > 1}
    assert not twice and sum("(default" in text for text in helps.values()) >= 3


def test_demo_flags_are_the_demo_options_fields():
    from edge_deeplab.cli.demo_cmd import options_from_args as demo_options
    from edge_deeplab.demos.pipeline import DemoOptions

    options = demo_options(build_parser().parse_args(["demo", "m.tflite"]))
    api = DemoOptions()
    assert [getattr(options, f.name) for f in cli_fields(DemoOptions)] == [getattr(api, f.name) for f in
                                                                            cli_fields(DemoOptions)]
    assert options.show and not api.show  # the CLI shows a window unless --no-show; the API runs headless
    options = demo_options(build_parser().parse_args(["demo", "m.tflite", "--class", "person", "--no-hud"]))
    assert (options.target, options.hud) == ("person", False)
