"""Times a Python plugin's `process` in native CPython, with its own SDK, on
the same events and batch size as `weir plugin bench`: the baseline the
componentized plugin is compared with.

    python3 scripts/bench/vitals_native.py <plugin-folder> <events.ndjson> [batch] [rounds]

The generated `wit_world` bindings exist only inside the component, so small
stand-ins with the same shapes are installed first.
"""

import statistics
import sys
import time
import types as pytypes


class Record:
    def __init__(self, *fields):
        self.fields = fields


def install_stand_ins():
    imports = pytypes.ModuleType("wit_world.imports")
    imports.types = pytypes.SimpleNamespace(Rejection=Record, Emitted=Record, Outcomes=Record)
    imports.host = pytypes.SimpleNamespace()
    imports.models = pytypes.SimpleNamespace()
    world = pytypes.ModuleType("wit_world")
    world.imports = imports
    sys.modules["wit_world"] = world
    sys.modules["wit_world.imports"] = imports
    errs = pytypes.ModuleType("componentize_py_types")
    errs.Err = type("Err", (Exception,), {})
    sys.modules["componentize_py_types"] = errs


class Batch:
    def __init__(self, lines):
        self.payloads = b"".join(lines)
        self.ends = []
        end = 0
        for line in lines:
            end += len(line)
            self.ends.append(end)
        self.timestamps = [0] * len(lines)


def main():
    folder, events = sys.argv[1], sys.argv[2]
    batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    install_stand_ins()
    sys.path.insert(0, folder)
    import app

    world = app.WitWorld()
    world.init("")
    lines = [line.rstrip(b"\n") for line in open(events, "rb")]
    batches = [Batch(lines[i : i + batch_size]) for i in range(0, len(lines), batch_size)]
    results = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for b in batches:
            world.process(b)
        results.append((time.perf_counter_ns() - started) / len(lines))
    print(f"native CPython {sys.version.split()[0]}: {statistics.median(results):.1f} ns/event at batch {batch_size} "
          f"(median of {rounds} rounds of {len(lines)} events, {min(results):.1f}-{max(results):.1f})")


main()
