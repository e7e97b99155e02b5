"""Scores events with a host model, in Python: each event's `features` array
is one row; one `infer` call per batch; each event is emitted with the
model's label and the probability of class 1 added.

Config (JSON): {"model": "<name in [models]>", "input": "<model input>"}
(input defaults to "features"). The model must give `label` and
`probabilities` (scikit-learn through skl2onnx, zipmap off).
"""

import json

import weir_plugin


class Score(weir_plugin.Processor):
    def __init__(self, config):
        try:
            c = json.loads(config)
            self.model = c["model"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"invalid config: {e}")
        self.input = c.get("input", "features")

    def process(self, batch, out):
        rows, values = [], []
        for event in batch:
            try:
                e = event.json()
                features = [float(x) for x in e["features"]]
            except (ValueError, KeyError, TypeError) as err:
                out.reject(event, f"no numeric `features` array: {err}")
                continue
            if rows and len(features) != len(rows[0][1]["features"]):
                out.reject(event, f"`features` has {len(features)} values, the batch's first row {len(rows[0][1]['features'])}")
                continue
            rows.append((event, e))
            values.extend(features)
        if not rows:
            return
        width = len(values) // len(rows)
        try:
            outputs, version = weir_plugin.infer(self.model, {self.input: ([len(rows), width], values)})
        except weir_plugin.InferError as err:
            for event, _ in rows:
                out.reject(event, f"model `{self.model}`: {err}")
            return
        labels = outputs["label"][1]
        probabilities = outputs["probabilities"][1]
        for i, (event, e) in enumerate(rows):
            e["label"] = labels[i]
            e["probability"] = probabilities[2 * i + 1]
            e["model_version"] = version
            out.emit(event, e)


WitWorld = weir_plugin.export(Score)
