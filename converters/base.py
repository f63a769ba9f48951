"""The Converter base class and its registry.

A target is declared as data (name, suffix, precisions, pip extra, default head
placement, the libraries it needs): the CLI choices, `edge-deeplab formats`, the
parametrised tests, the report, the quickstart and the benchmarks all read the registry.
A converter only turns the shared intermediates of a `ConversionJob` (the SavedModel
export, the ONNX export, the calibration batches) into its artifact (the `build` step of
`pipeline.py`), and stores the metadata in it (or, by default, in a JSON file beside it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Dict, List, Optional, Tuple

from edge_deeplab import deps
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.metadata_io import write_sidecar_metadata
from edge_deeplab.registry import Registry
from edge_deeplab.runs import sidecar_metadata_path
from edge_deeplab.status import Status

if TYPE_CHECKING:  # annotations only (the job does not import this module)
    from .job import ConversionJob, HeadPlacement

# every precision any target knows; int16x8: 16-bit activations, 8-bit weights
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8", "int8-mixed", "int8-mixed16")
# int8 with the fewest layers kept in float (int8-mixed) or raised to 16-bit activations
# (int8-mixed16) that hold an mIoU budget on validation images
BUDGETED = ("int8-mixed", "int8-mixed16")
# What "all" leaves out (made when named): the budgeted ones (validation data and minutes of
# search) and int16x8, whose engines here have no fast kernels for it (tiny model, 2 threads:
# TFLite 14.6 ms p50 on LiteRT's reference kernels against 0.3 ms for int8 with XNNPACK).
ON_REQUEST = (*BUDGETED, "int16x8")
# int8 model input/output: "pixels" = uint8 RGB pixels in (scale 1, zero point 0), the
# normalisation in the graph (TFLite, OpenVINO, ONNX; plain int8); the others are TFLite's.
IO_DTYPES = ("pixels", "int8", "uint8", "float32")


@dataclass(frozen=True)
class ConversionResult:
    """The outcome of one target x precision (made once, by `pipeline.publish` or as a failure).

    status: a `Status` (a plain string is taken and checked): ok, conversion failed,
        parity failed, not available or budget missed (int8-mixed over its mIoU budget:
        written, the best the search found).
    parity: {"agreement", "miou", "max_abs_diff", "images", "passed", ...} or {}.
    accuracy: int8-mixed's record (budget, measured drop, float layers), else {}.
    """

    target: str
    precision: str
    path: Optional[Path] = None
    status: Status = Status.OK
    reason: str = ""
    parity: Dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0
    size_mb: float = 0.0
    head: str = "logits"
    resolution: str = "full"
    accuracy: Dict[str, object] = field(default_factory=dict)
    client: str = ""  # the client that reads it right ("" where its client refuses it)

    def __post_init__(self):
        object.__setattr__(self, "status", Status(self.status))  # a misspelt status raises here, not in a report

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["path"] = str(self.path) if self.path else None
        return data


class Converter(ABC):
    """Base class of every target.

    Subclasses declare, as class attributes:
        name: registry key and CLI value ("tflite").
        suffix: artifact file suffix (".tflite").
        precisions: the precisions it makes, in CLI spelling.
        extra: the pip extra that installs what it needs.
        requires: (importable module, pip extra that installs it) pairs it needs, checked
            by `available()`.
        runtime: the runtime registry name that opens its artifacts.
        default_head, default_resolution: the head placement that runs fastest there.
        default_placements: per-precision exceptions to it, each measured.
        libraries: pip distributions whose versions a report records.
        quickstart: the precisions `edge-deeplab quickstart` makes and reports (none: skipped).
        pixel_input: whether its int8 artifacts take raw uint8 pixels when the job's
            io_dtype is "pixels" (the normalisation then sits in the graph).
        pixel_precisions: the precisions whose artifacts take them then.
        order: where it is listed (CLI choices, `formats`, report rows).
        notes: {precision: what a user should know of it on this target} (slow kernels, or
            why a precision is not made), shown by `edge-deeplab formats`.
        calib_methods: the calibration methods its library offers (`quant_settings`), and
            default_calib_method, the one measured best on the CamVid recipe's model.
        bias_correction: whether its library corrects the biases after quantizing (NNCF).

    Register a subclass with `@CONVERTERS.register`; a module in this package is found
    without an import line anywhere.
    """

    name: ClassVar[str]
    suffix: ClassVar[str]
    precisions: ClassVar[Tuple[str, ...]]
    extra: ClassVar[str]
    requires: ClassVar[Tuple[Tuple[str, str], ...]] = ()
    runtime: ClassVar[str]
    libraries: ClassVar[Tuple[str, ...]] = ()
    quickstart: ClassVar[Tuple[str, ...]] = ()
    pixel_input: ClassVar[bool] = False
    pixel_precisions: ClassVar[Tuple[str, ...]] = ("int8",)
    order: ClassVar[int] = 100
    notes: ClassVar[Dict[str, str]] = {}
    calib_methods: ClassVar[Tuple[str, ...]] = ("minmax",)
    default_calib_method: ClassVar[str] = "minmax"
    bias_correction: ClassVar[bool] = False
    # The in-graph argmax was the fastest placement end to end on every CPU target
    # (benchmarks/head_placement.py, 128x128, 11 classes, 360x480 frames, 2 threads:
    # TFLite int8 2.7 ms vs 6.5 logits/full and 5.1 logits/feature; the host's upsample +
    # argmax of C channels costs 2.5-5.6 ms, the uint8 map's nearest resize 0.1 ms).
    default_head: ClassVar[str] = "argmax"
    # {precision: (head, resolution)} where a precision's measured-best placement is not the
    # fastest one above (OpenVINO int8: its class accuracy).
    default_placements: ClassVar[Dict[str, Tuple[str, str]]] = {}
    # The ecosystem client apps are built on that reads this format's artifacts ("": none).
    client: ClassVar[str] = ""
    default_resolution: ClassVar[str] = "full"

    @classmethod
    def missing(cls) -> List[Tuple[str, str]]:
        """(module, extra) pairs of `requires` that cannot be imported here."""
        return [(module, extra) for module, extra in cls.requires if not deps.available(module)]

    @classmethod
    def available(cls) -> Tuple[bool, str]:
        """(True, "") when it can run on this machine, else (False, why not)."""
        missing = cls.missing()
        if missing:
            extras = ",".join(sorted({extra for _, extra in missing}))
            names = ", ".join(module for module, _ in missing)
            return False, f"needs {names}: pip install 'edge-deeplab[{extras}]'"
        return True, ""

    def takes_pixels(self, job: ConversionJob, precision: str, placement: HeadPlacement) -> bool:
        """Whether the artifact of `precision` and head `placement` made in `job` takes raw uint8 pixels."""
        return self.pixel_input and job.io_dtype == "pixels" and precision in self.pixel_precisions

    @classmethod
    def artifact_name(cls, precision: str) -> str:
        """THE file name of an artifact of `precision`: model_<precision><suffix>."""
        return f"model_{precision}{cls.suffix}"

    @classmethod
    def artifact_path(cls, out_dir: Path, precision: str) -> Path:
        """Where `convert` writes the artifact of `precision` in `out_dir`."""
        return Path(out_dir) / cls.artifact_name(precision)

    def files(self, path: Path) -> List[Path]:
        """Every file of the artifact at `path`, in the order they are renamed into place."""
        sidecar = sidecar_metadata_path(Path(path))
        return [Path(path), sidecar] if sidecar.is_file() else [Path(path)]

    @abstractmethod
    def convert(
        self, job: ConversionJob, precision: str, placement: HeadPlacement, dest: Path
    ) -> Optional[dict]:
        """Write the artifact for `precision` at `dest` (a staging path in the out dir).

        Returns the search's record for a budgeted precision (int8-mixed:
        `validation.accuracy_record`), else None."""

    def layer_sqnr(self, path: Path, precision: str, inputs) -> Optional[Tuple[str, Dict[str, float]]]:
        """(method, {layer: SQNR dB}) of an int8 artifact's own per-layer quantization
        noise, from the engine's debugger, or None when there is none (the default).
        `inputs` is a `converters.quant_debug.DebugInputs`."""
        return None

    def measure_parity(self, checker, path: Path, meta: ArtifactMetadata) -> Optional[Tuple[dict, dict]]:
        """(parity figures, self-test entry) measured elsewhere than in this process, or None
        (the default) for the usual check: the artifact opened in its engine here. An engine
        built on a remote device overrides it: only that device can run it."""
        return None

    def embed_metadata(self, path: Path, meta: ArtifactMetadata) -> None:
        """Store `meta` with the artifact at `path`.

        Default: a JSON file beside it, which the base `Runtime.read_metadata` reads.
        Formats with a place for metadata inside the file override this and the reader.
        """
        write_sidecar_metadata(path, meta)

    def client_ready(self, meta: ArtifactMetadata) -> bool:
        """Whether `client` reads an artifact with `meta` right; where not, the client
        refuses it (tests/runtimes/test_clients.py runs them)."""
        return False


CONVERTERS: Registry[type] = Registry("converter")
