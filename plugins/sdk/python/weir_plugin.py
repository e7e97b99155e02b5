"""Write Weir plugins in Python.

A plugin subclasses `Processor` and exports itself with `export`:

    import weir_plugin

    class Identity(weir_plugin.Processor):
        def process(self, batch, out):
            for event in batch:
                out.emit(event, event.payload)

    WitWorld = weir_plugin.export(Identity)

Build it with componentize-py against the `processor` world in `wit/`
(see docs/plugins/python.md). The batch arrives in the flat layout of the
WIT contract; this module hands it out as `Event`s and collects outcomes
into the same layout, so authors never see offsets.
"""

import json

from wit_world.imports import host, models, types

__all__ = ["Event", "Outcomes", "Processor", "export", "log", "counter_add", "gauge_set", "infer", "InferError"]

MAIN_OUTPUT = "out"


class Event:
    """One input event: its JSON bytes, its event time, its place in the batch."""

    __slots__ = ("index", "payload", "timestamp_ms")

    def __init__(self, index, payload, timestamp_ms):
        self.index = index
        self.payload = payload
        self.timestamp_ms = timestamp_ms

    def json(self):
        """The payload decoded as a dict."""
        return json.loads(self.payload)


def _events(batch):
    payloads, ends, times = batch.payloads, batch.ends, batch.timestamps
    start = 0
    for i, end in enumerate(ends):
        yield Event(i, payloads[start:end], times[i])
        start = end


class Outcomes:
    """What the plugin does with each event: emit to an output, or reject it."""

    def __init__(self):
        self._outputs = [MAIN_OUTPUT]
        self._chunks = []
        self._size = 0
        self._ends = []
        self._inputs = []
        self._ports = []
        self._rejected = []

    def emit(self, event, value, output=MAIN_OUTPUT):
        """Emits `value` (bytes, str, or anything JSON-serializable) derived from `event`.

        Emitting `event.payload` itself sends no bytes back: the host forwards
        the input event's bytes, which it already holds.
        """
        if value is event.payload:
            data = b""
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif isinstance(value, str):
            data = value.encode()
        else:
            data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            port = self._outputs.index(output)
        except ValueError:
            self._outputs.append(output)
            port = len(self._outputs) - 1
        self._chunks.append(data)
        self._size += len(data)
        self._ends.append(self._size)
        self._inputs.append(event.index)
        self._ports.append(port)

    def reject(self, event, reason):
        """Refuses `event`: it goes to the dead-letter output with `reason`."""
        self._rejected.append(types.Rejection(event.index, str(reason)))

    def _to_wit(self):
        emitted = types.Emitted(b"".join(self._chunks), self._ends, self._inputs, self._ports)
        return types.Outcomes(self._outputs, emitted, self._rejected)


class Processor:
    """Base class of a plugin. Override `process`; `init` receives the step's config."""

    def __init__(self, config):
        self.config = config

    def process(self, batch, out):
        raise NotImplementedError


def log(level, message):
    """Writes a line to the host log; level is one of trace, debug, info, warn, error."""
    host.log(getattr(host.Level, level.upper()), message)


def counter_add(name, value=1):
    host.counter_add(name, value)


def gauge_set(name, value):
    host.gauge_set(name, float(value))


class InferError(Exception):
    """The host refused or failed an `infer` call; the message says why."""


def infer(model, inputs):
    """Runs the host model `model` (granted by the step's `models` key) once
    for a whole batch.

    `inputs` maps each input name to `(shape, values)`: `values` is a flat,
    row-major list of floats (a float32 tensor) or of ints (int64). Returns
    `(outputs, version)`: `outputs` maps each output name to `(shape, values)`,
    `version` is the sha256 of the model file. Raises `InferError`.
    """
    from componentize_py_types import Err

    tensors = []
    for name, (shape, values) in inputs.items():
        if values and all(type(v) is int for v in values):
            data = models.TensorData_Int64(list(values))
        else:
            data = models.TensorData_Float32([float(v) for v in values])
        tensors.append(models.Tensor(name, list(shape), data))
    try:
        result = models.infer(model, tensors)
    except Err as e:
        raise InferError(e.value) from None
    return {t.name: (t.shape, t.data.value) for t in result.outputs}, result.version


def export(processor_cls):
    """Returns the `WitWorld` class that componentize-py exports."""
    from componentize_py_types import Err

    state = {}

    class WitWorld:
        def init(self, config):
            try:
                state["plugin"] = processor_cls(config)
            except Exception as e:  # the host reports the message and refuses the plugin
                raise Err(str(e))

        def process(self, batch):
            out = Outcomes()
            state["plugin"].process(_events(batch), out)
            return out._to_wit()

    return WitWorld
