"""The variants a report compares, derived from the converter and runtime registries.

A variant is (format, precision, runtime): which converter makes the artifact, at which
precision, and which engine runs it. The list is built from `CONVERTERS` (each class's
`suffix` and `precisions`) and `RUNTIMES` (each class's `suffixes`), plus the Keras float
reference, so a new converter file shows up in the report with no edit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from ..errors import InvalidInputError

REFERENCE_FORMAT = "keras"
REFERENCE_PRECISION = "fp32"


@dataclass(frozen=True)
class Variant:
    """One row of the report.

    format: converter registry name ("tflite", "onnx", ...) or "keras" for the reference.
    precision: one of the converter's precisions ("fp32", "fp16", "dynamic", "int8").
    runtime: runtime registry name that runs the artifact ("tflite", "onnxruntime", ...).
    suffix: the artifact's file suffix (".tflite", ".onnx", ".xml", ...).
    """

    format: str
    precision: str
    runtime: str
    suffix: str = ""

    @property
    def key(self) -> str:
        """ "format:precision", as --variants names it."""
        return f"{self.format}:{self.precision}"

    @property
    def ident(self) -> str:
        """Unique within a report: "format:precision@runtime"."""
        return f"{self.key}@{self.runtime}"

    @property
    def label(self) -> str:
        return f"{self.format} {self.precision} ({self.runtime})"

    @property
    def is_reference(self) -> bool:
        return self.format == REFERENCE_FORMAT

    def artifact_name(self) -> str:
        """The file `converters.convert` writes for this variant (`Converter.artifact_name`)."""
        return _registries()[0].get(self.format).artifact_name(self.precision)


def _registries():
    from edge_deeplab.converters import CONVERTERS
    from edge_deeplab.runtimes import RUNTIMES

    return CONVERTERS, RUNTIMES


def runtimes_for_suffix(suffix: str, runtime_registry=None) -> List[str]:
    """Runtime names able to open files with `suffix`, in registry order (native first)."""
    if runtime_registry is None:
        runtime_registry = _registries()[1]
    return [
        name
        for name, cls in runtime_registry.items()
        if suffix.lower() in getattr(cls, "suffixes", ())
    ]


def reference_variant() -> Variant:
    return Variant(REFERENCE_FORMAT, REFERENCE_PRECISION, REFERENCE_FORMAT, ".keras")


def all_variants(
    runtimes: Optional[Sequence[str]] = None, converters=None, runtime_registry=None
) -> List[Variant]:
    """Every (format, precision, runtime) the registries allow, reference first.

    Args:
        runtimes: engines to run the artifacts on. None: each format's own engine (the
            converter's `runtime`). Given: every listed engine that opens
            the suffix, e.g. ("onnxruntime", "openvino") runs .onnx files on both.
        converters, runtime_registry: registries (default: the package's).
    """
    if converters is None or runtime_registry is None:
        default_conv, default_rt = _registries()
        converters = converters if converters is not None else default_conv
        runtime_registry = runtime_registry if runtime_registry is not None else default_rt
    if runtimes is not None:
        unknown = sorted(set(runtimes) - set(runtime_registry.names()))
        if unknown:
            raise InvalidInputError(
                f"unknown runtime(s) {', '.join(unknown)}; "
                f"valid: {', '.join(runtime_registry.names())}"
            )
    variants = [reference_variant()]
    for name, cls in converters.items():
        native = getattr(cls, "runtime", None)
        engines = runtimes_for_suffix(cls.suffix, runtime_registry)
        if runtimes is None:
            # The converter names its own engine; one not registered here still gets its
            # row (reported as not available).
            engines = [native or (engines[0] if engines else name)]
        else:
            engines = [e for e in dict.fromkeys([native, *engines]) if e in runtimes]
        for precision in cls.precisions:
            variants.extend(Variant(name, precision, engine, cls.suffix) for engine in engines)
    return variants


def parse_variant_specs(text: Optional[str]) -> Optional[Tuple[Tuple[str, Optional[str]], ...]]:
    """'tflite:int8,openvino' -> (("tflite", "int8"), ("openvino", None)); None stays None."""
    if text is None:
        return None
    specs = []
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        fmt, _, precision = item.partition(":")
        specs.append((fmt.strip(), precision.strip() or None))
    if not specs:
        raise InvalidInputError("--variants is empty; give e.g. tflite:int8,openvino:int8")
    return tuple(specs)


def select_variants(
    specs: Optional[Iterable[Tuple[str, Optional[str]]]], variants: Sequence[Variant]
) -> List[Variant]:
    """The variants matching `specs` (format, precision-or-None); all when specs is None.

    The Keras float reference is always kept first: every delta is measured against it.
    A spec naming no known variant raises, listing the valid ones.
    """
    if specs is None:
        return list(variants)
    chosen: List[Variant] = [v for v in variants if v.is_reference]
    for fmt, precision in specs:
        matches = [
            v
            for v in variants
            if v.format == fmt and (precision is None or v.precision == precision)
        ]
        if not matches:
            valid = sorted({v.key for v in variants})
            shown = f"{fmt}:{precision}" if precision else fmt
            raise InvalidInputError(f"unknown variant {shown!r}; valid: {', '.join(valid)}")
        chosen.extend(v for v in matches if v not in chosen)
    return chosen
