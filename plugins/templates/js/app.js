// Vital-signs early warning: scores heart rate, respiration rate, SpO2 and
// temperature on early-warning bands and sends an alert to the `alerts`
// output when the total reaches the threshold (the step's `config`, 5 by
// default). An event without one of the fields is refused with the reason.
//
// Build: `weir plugin build`; test: `weir plugin test . --input
// sample/input.ndjson --expect sample/expected.ndjson`.

import { exportProcessor } from "./weir_plugin.js";

// Each scale: the bands' upper edges, and the points of each band (one more,
// for values above the last edge). Flat arrays and indexed loops: the
// component's JavaScript engine interprets, and destructuring costs it dearly.
const HR = { edges: [40, 50, 90, 110, 130], points: [3, 1, 0, 1, 2, 3] };
const RR = { edges: [8, 11, 20, 24], points: [3, 1, 0, 2, 3] };
const SPO2 = { edges: [91, 93, 95], points: [3, 2, 1, 0] };
const TEMP = { edges: [35.0, 36.0, 38.0, 39.0], points: [3, 1, 0, 1, 2] };

// Points for `value`: the first band whose upper edge is at or above it.
function band(value, scale) {
  const edges = scale.edges;
  let i = 0;
  while (i < edges.length && value > edges[i]) i++;
  return scale.points[i];
}

function number(vitals, name) {
  if (!(name in vitals)) throw new Error(`missing field \`${name}\``);
  const value = vitals[name];
  if (typeof value !== "number") throw new Error(`field \`${name}\` is not a number`);
  return value;
}

function score(vitals) {
  if (!("patient" in vitals)) throw new Error("missing field `patient`");
  if (typeof vitals.patient !== "string") throw new Error("field `patient` is not a string");
  return band(number(vitals, "hr"), HR) + band(number(vitals, "rr"), RR)
    + band(number(vitals, "spo2"), SPO2) + band(number(vitals, "temp"), TEMP);
}

class VitalsAlert {
  constructor(config) {
    const text = config.trim();
    this.threshold = text === "" ? 5 : Number(text);
    if (!Number.isInteger(this.threshold)) {
      throw new Error(`config: the threshold must be a whole number, not \`${text}\``);
    }
  }

  process(batch, out) {
    for (let i = 0; i < batch.length; i++) {
      const event = batch[i];
      const vitals = event.json();
      let total;
      try {
        total = score(vitals);
      } catch (e) {
        out.reject(event, e.message);
        continue;
      }
      if (total >= this.threshold) {
        const level = total >= 7 ? "high" : "medium";
        out.emit(event, { patient: vitals.patient, score: total, level }, "alerts");
      }
    }
  }
}

export const { init, process } = exportProcessor(VitalsAlert);
