"""`edge-deeplab doctor`: what this machine is, and which formats run here (and if not, why)."""

from __future__ import annotations

import argparse

from ..targets.cli import add_target_arg, write_json

ORDER = 55  # its place in `edge-deeplab --help`, after `formats`


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor",
        help="describe this machine: CPU features, emulation, GPU, engines, and what each format needs",
        description=(
            "What this machine is (CPU and the ISA features that decide int8 speed, emulation, Jetson "
            "and GPU, memory and disk) and which formats can run here, with the install line of each "
            "missing engine. Nothing is imported but OpenCV."
        ),
    )
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="OUT",
                        help="print one JSON object instead (schema in edge_deeplab.doctor), or write it to OUT")
    add_target_arg(parser)
    return parser


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render(found: dict) -> str:
    """The doctor's findings as the text a user reads."""
    cpu, host = found["cpu"], found["host"]
    core = f" ({cpu['core']})" if cpu["core"] else ""
    lines = [
        f"edge-deeplab {found['edge_deeplab']} on {host['os']}, {host['kernel']}, Python {host['python']}",
        f"CPU        {cpu['model']}{core}, {cpu['arch']}, {cpu['usable_cores']}/{cpu['cores']} cores usable",
        "features   " + (" ".join(f"{name}:{_yes(on)}" for name, on in cpu["features"].items()) or "-"),
        "emulated   " + ("yes: " + "; ".join(found["emulation"]) if found["emulated"] else "no"),
    ]
    board = found["jetson"]
    if board:
        lines.append(f"Jetson     {board['model']}, L4T {board['l4t'] or '?'}, JetPack {board['jetpack'] or '?'}")
    lines.append(f"GPU        {found['gpu'] or 'none (no NVIDIA GPU found)'}")
    mem, dsk = found["memory"], found["disk"]
    lines.append(f"memory     {mem['available_mb']} MB available of {mem['total_mb']} MB")
    lines.append(f"disk       {dsk['free_mb']} MB free at {dsk['path']}")
    cv = found["opencv"]
    if cv is None:
        lines.append("OpenCV     not installed (the demos need it: pip install \"edge-deeplab[demo]\")")
    elif "error" in cv:
        lines.append(f"OpenCV     installed but does not import: {cv['error']}")
    else:
        lines.append(f"OpenCV     {cv['version']}, GStreamer {_yes(cv['gstreamer'])}")
    installed = [f"{name} {version}" for name, version in found["libraries"].items() if version]
    lines.append("libraries  " + (", ".join(installed) or "-"))
    lines.append("")
    lines.append(f"{'format':<10}{'precisions':<34}runs here")
    for row in found["formats"]:
        status = f"yes ({row['engine']})" if row["available"] else f"no: needs {row['missing']}: {row['install']}"
        lines.append(f"{row['format']:<10}{','.join(row['precisions']):<34}{status}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.target:
        return _on_target(args)
    from edge_deeplab.doctor import collect

    found = collect()
    if args.json:
        write_json(found, args.json)
    else:
        print(render(found))
    return 0


def _on_target(args: argparse.Namespace) -> int:
    """The device's own doctor, through its edge install; where that install is missing or
    another version, what the device is and the line that installs this version there."""
    from edge_deeplab import __version__
    from edge_deeplab.targets.remote import JSON_OUT, Device, install_line

    with Device(args.target, check_version=False) as device:
        info = device.info
        if info.get("edge_deeplab") == __version__:
            found = device.run("doctor", ["--json", JSON_OUT]).result
            if args.json:
                write_json(found, args.json)
            else:
                print(f"on {device.name} ({device.target.host}):\n{render(found)}")
            return 0
    have = f"edge-deeplab {info['edge_deeplab']}" if info.get("edge_deeplab") else \
        f"no edge-deeplab ({info.get('import_error') or 'not installed'})"
    print(f"on {device.name} ({device.target.host}): Python {info.get('python') or '?'}, {have}; "
          f"this host runs {__version__}: install it there with {install_line()}")
    return 1
