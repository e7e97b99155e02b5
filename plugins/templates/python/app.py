"""Vital-signs early warning: scores heart rate, respiration rate, SpO2 and
temperature on early-warning bands and sends an alert to the `alerts` output
when the total reaches the threshold (the step's `config`, 5 by default). An
event without one of the fields is refused with the reason.

Build: `weir plugin build`; test: `weir plugin test . --input
sample/input.ndjson --expect sample/expected.ndjson`.
"""

import json

import weir_plugin

HR = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), 3
RR = ((8, 3), (11, 1), (20, 0), (24, 2)), 3
SPO2 = ((91, 3), (93, 2), (95, 1)), 0
TEMP = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)), 2


def band(value, scale):
    """Points for `value`: the first band whose upper edge is at or above it."""
    bands, above = scale
    for edge, points in bands:
        if value <= edge:
            return points
    return above


def number(vitals, name):
    if name not in vitals:
        raise ValueError(f"missing field `{name}`")
    value = vitals[name]
    if type(value) not in (int, float):  # bool is an int in Python: refuse it too
        raise ValueError(f"field `{name}` is not a number")
    return value


def score(vitals):
    if "patient" not in vitals:
        raise ValueError("missing field `patient`")
    if not isinstance(vitals["patient"], str):
        raise ValueError("field `patient` is not a string")
    return (
        band(number(vitals, "hr"), HR)
        + band(number(vitals, "rr"), RR)
        + band(number(vitals, "spo2"), SPO2)
        + band(number(vitals, "temp"), TEMP)
    )


class VitalsAlert(weir_plugin.Processor):
    def __init__(self, config):
        text = config.strip()
        try:
            self.threshold = int(text) if text else 5
        except ValueError:
            raise ValueError(f"config: the threshold must be a whole number, not `{text}`") from None

    def process(self, batch, out):
        for event in batch:
            vitals = json.loads(event.payload)
            try:
                total = score(vitals)
            except ValueError as e:
                out.reject(event, e)
                continue
            if total >= self.threshold:
                level = "high" if total >= 7 else "medium"
                out.emit(event, {"patient": vitals["patient"], "score": total, "level": level}, output="alerts")


WitWorld = weir_plugin.export(VitalsAlert)
