"""CPU fakes of `tensorrt` (shaped like 10.x or 11.x) and of cuda-python's runtime API.

They keep the contracts the real bindings have, so the converter and the runtime run
unchanged: cuda-python's `(error, *values)` returns and real host memory behind device
pointers (ctypes buffers, so `cudaMemcpy` really copies); TensorRT 10's builder flags and
entropy calibrator, which 11 does not have; a strongly typed build that, like TensorRT's,
refuses Q/DQ with a non-zero or unsigned zero point; and an "engine" that is the parsed
ONNX run by onnxruntime on the CPU, so parity checks measure the graph TensorRT was given.
A thread must call cudaSetDevice before it executes, as a real multi-GPU box would demand.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import json
import threading
import types
from typing import Dict, List, Optional

import numpy as np

MAGIC = b"FAKE-TRT-ENGINE\n"
ALLOCATION_FAILED, INVALID_VALUE = 2, 1


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # find_spec() sees it
    return module


class FakeCuda:
    """State of the fake CUDA runtime: live allocations, calls, failures to inject."""

    def __init__(self, devices: int = 1):
        self.devices = devices
        self.memory: Dict[int, ctypes.Array] = {}
        self.freed: List[int] = []
        self.calls: List[str] = []
        self.fail: Dict[str, int] = {}  # call name -> error code it returns
        self.thread_device = threading.local()
        self.streams = set()

    def module(self) -> types.ModuleType:
        mod = _module("cuda.bindings.runtime")
        mod.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
        for name in ("cudaMalloc", "cudaFree", "cudaMemcpy", "cudaMemcpyAsync", "cudaStreamCreate",
                     "cudaStreamDestroy", "cudaStreamSynchronize", "cudaSetDevice", "cudaGetDeviceCount"):
            setattr(mod, name, self._recorded(name, getattr(self, "_" + name)))
        names = {2: b"cudaErrorMemoryAllocation"}
        mod.cudaGetErrorName = lambda err: (0, names.get(int(err), b"cudaErrorInvalidValue"))
        return mod

    def _recorded(self, name, fn):
        def call(*args):
            self.calls.append(name)
            if name in self.fail:
                return (self.fail[name], None) if name in ("cudaMalloc", "cudaStreamCreate") else (self.fail[name],)
            return fn(*args)

        return call

    def device_set_here(self) -> bool:
        return getattr(self.thread_device, "index", None) is not None

    def _cudaMalloc(self, nbytes):
        buffer = ctypes.create_string_buffer(int(nbytes))
        self.memory[ctypes.addressof(buffer)] = buffer
        return 0, ctypes.addressof(buffer)

    def _cudaFree(self, pointer):
        if self.memory.pop(int(pointer), None) is None:
            return (INVALID_VALUE,)  # double free or a foreign pointer
        self.freed.append(int(pointer))
        return (0,)

    def _cudaMemcpy(self, dst, src, nbytes, kind):
        ctypes.memmove(int(dst), int(src), int(nbytes))
        return (0,)

    def _cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        return self._cudaMemcpy(dst, src, nbytes, kind)

    def _cudaStreamCreate(self):
        stream = len(self.streams) + 1000
        self.streams.add(stream)
        return 0, stream

    def _cudaStreamDestroy(self, stream):
        self.streams.discard(stream)
        return (0,)

    def _cudaStreamSynchronize(self, stream):
        return (0,)

    def _cudaSetDevice(self, index):
        if not 0 <= int(index) < self.devices:
            return (INVALID_VALUE,)
        self.thread_device.index = int(index)
        return (0,)

    def _cudaGetDeviceCount(self):
        return 0, self.devices


def read_device(pointer: int, nbytes: int) -> bytes:
    return ctypes.string_at(int(pointer), int(nbytes))


class FakeTensorRT:
    """A fake `tensorrt` module of one major version, and what its builds saw."""

    def __init__(self, version: str, cuda: FakeCuda, builder_starts: bool = True):
        self.version, self.cuda, self.builder_starts = version, cuda, builder_starts
        self.weak = int(version.split(".")[0]) < 11
        self.builds: List[dict] = []  # per build: typing, flags, the ONNX, calibration batches

    def module(self) -> types.ModuleType:
        trt = _module("tensorrt")
        trt.__version__ = self.version
        trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, level=2: None})
        trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
        trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
        trt.nptype = lambda dtype: dtype
        trt.BuilderFlag = types.SimpleNamespace(TF32=7, **({"FP16": 0, "INT8": 1} if self.weak else {}))
        if self.weak:
            trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {"__init__": lambda s: None})
        trt.Builder = self._builder
        trt.OnnxParser = FakeParser
        trt.Runtime = lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda data: load_engine(data, self))
        return trt

    def _builder(self, logger):
        if not self.builder_starts:
            raise TypeError("pybind11::init(): factory function returned nullptr")
        return FakeBuilder(self)


class FakeNetwork:
    def __init__(self, flags: int):
        self.flags, self.onnx = flags, None


class FakeParser:
    def __init__(self, network: FakeNetwork, logger):
        self.network, self.errors = network, []

    def parse(self, data: bytes) -> bool:
        import onnx

        try:
            onnx.load_from_string(data)
        except Exception as exc:  # noqa: BLE001  (onnx raises DecodeError and others)
            self.errors = [f"ModelImporter: {exc}"]
            return False
        self.network.onnx = data
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, index):
        return self.errors[index]


class FakeConfig:
    def __init__(self, trt: FakeTensorRT):
        self.flags, self.progress_monitor = set(), None
        if trt.weak:
            self.int8_calibrator = None

    def set_flag(self, flag):
        self.flags.add(flag)


class FakeBuilder:
    def __init__(self, trt: FakeTensorRT):
        self.trt = trt

    def create_network(self, flags: int = 0) -> FakeNetwork:
        return FakeNetwork(flags)

    def create_builder_config(self) -> FakeConfig:
        return FakeConfig(self.trt)

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> Optional[bytes]:
        strong = not self.trt.weak or bool(network.flags & (1 << 1))
        build = {"typing": "strong" if strong else "weak", "flags": set(config.flags), "onnx": network.onnx,
                 "calibration": []}
        self.trt.builds.append(build)
        if strong and (config.flags & {0, 1}):
            return None  # a strongly typed network refuses precision flags
        if strong and not symmetric_qdq(network.onnx):
            return None  # "only symmetric int8 quantization with zero point 0 is supported"
        if 1 in config.flags:
            build["calibration"] = calibrate(getattr(config, "int8_calibrator", None))
            if build["calibration"] is None:
                return None
        return MAGIC + json.dumps({"typing": build["typing"]}).encode() + b"\n" + network.onnx


def symmetric_qdq(onnx_bytes: bytes) -> bool:
    """Every Q/DQ zero point int8 and 0, as TensorRT's explicit quantization requires."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero = inits.get(node.input[2])
            if zero is None or zero.dtype != np.int8 or np.any(zero != 0):
                return False
    return True


def calibrate(calibrator) -> Optional[List[np.ndarray]]:
    """Drive an entropy calibrator as TensorRT does; the batches it put in device memory."""
    if calibrator is None:
        return None
    if calibrator.read_calibration_cache() is not None:
        return []  # TensorRT reuses a calibration cache without asking for batches
    seen = []
    while True:
        pointers = calibrator.get_batch(["image"])
        if pointers is None:
            break
        seen.append(np.frombuffer(read_device(pointers[0], calibrator.buffer.nbytes), np.float32).copy())
    calibrator.write_calibration_cache(b"fake calibration table")
    return seen


def load_engine(data: bytes, trt: FakeTensorRT):
    if not data.startswith(MAGIC):
        return None
    header, onnx_bytes = data[len(MAGIC):].split(b"\n", 1)
    return FakeEngine(onnx_bytes, trt.cuda, json.loads(header))


def _session_options(onnx_bytes: bytes):
    """A Q/DQ graph runs as written (float Quantize/DequantizeLinear around float ops), not
    fused into onnxruntime's int8 kernels: TensorRT accumulates int8 products in int32, while
    the CPU kernels on x86 without VNNI sum pairs of u8 x s8 products in int16 and saturate
    there (the symmetric graph's int8 activations become u8 + 128 for them), which flipped
    1.7% of the tiny model's confident pixels on one CI machine and none on a VNNI one."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    if any(node.op_type == "QuantizeLinear" for node in onnx.load_from_string(onnx_bytes).graph.node):
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


class FakeEngine:
    """The parsed ONNX run by onnxruntime; tensors named as in the ONNX."""

    def __init__(self, onnx_bytes: bytes, cuda: FakeCuda, header: dict):
        import onnxruntime as ort

        self.header, self.cuda = header, cuda
        options = _session_options(onnx_bytes)
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = {o.name: o for o in self.session.get_outputs()}
        self.names = [*self.inputs, *self.outputs]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return "input" if name in self.inputs else "output"

    def get_tensor_shape(self, name):
        arg = self.inputs.get(name) or self.outputs[name]
        return tuple(d if isinstance(d, int) else -1 for d in arg.shape)

    def get_tensor_dtype(self, name):
        arg = self.inputs.get(name) or self.outputs[name]
        return np.dtype({"tensor(float)": np.float32, "tensor(float16)": np.float16}.get(arg.type, np.int64))

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine):
        self.engine, self.addresses, self.shape, self.threads = engine, {}, None, []

    def set_input_shape(self, name, shape):
        wanted = self.engine.get_tensor_shape(name)
        if len(shape) != len(wanted) or any(w not in (-1, s) for w, s in zip(wanted, shape)):
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        shape = self.engine.get_tensor_shape(name)
        return (self.shape[0], *shape[1:]) if shape and shape[0] == -1 else shape

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = int(pointer)

    def execute_async_v3(self, stream) -> bool:
        if not self.engine.cuda.device_set_here():
            return False  # this thread never chose a device
        self.threads.append(threading.get_ident())
        (in_name,) = self.engine.inputs
        dtype = self.engine.get_tensor_dtype(in_name)
        nbytes = int(np.prod(self.shape)) * dtype.itemsize
        batch = np.frombuffer(read_device(self.addresses[in_name], nbytes), dtype).reshape(self.shape)
        out_name = next(iter(self.engine.outputs))
        (out,) = self.engine.session.run([out_name], {in_name: batch})
        out = np.ascontiguousarray(out, self.engine.get_tensor_dtype(out_name))
        ctypes.memmove(self.addresses[out_name], out.ctypes.data, out.nbytes)
        return True


def install(monkeypatch, version: str = "10.3.0", devices: int = 1, builder_starts: bool = True):
    """Put fake `tensorrt` and `cuda.bindings.runtime` modules in sys.modules: (trt, cuda)."""
    import sys

    cuda = FakeCuda(devices)
    trt = FakeTensorRT(version, cuda, builder_starts)
    runtime = cuda.module()
    bindings, package = _module("cuda.bindings"), _module("cuda")
    bindings.runtime, package.bindings = runtime, bindings
    for name, module in {"tensorrt": trt.module(), "cuda": package, "cuda.bindings": bindings,
                         "cuda.bindings.runtime": runtime}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return trt, cuda
