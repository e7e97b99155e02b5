// Vital-signs early warning: scores heart rate, respiration rate, SpO2 and
// temperature on early-warning bands and sends an alert to the `alerts`
// output when the total reaches the threshold (the step's `config`, 5 by
// default). An event without one of the fields is refused with the reason.
//
// Build: `weir plugin build`; test: `weir plugin test . --input
// sample/input.ndjson --expect sample/expected.ndjson`.

import { exportProcessor } from "./weir_plugin.js";

const HR = [[40, 3], [50, 1], [90, 0], [110, 1], [130, 2], [Infinity, 3]];
const RR = [[8, 3], [11, 1], [20, 0], [24, 2], [Infinity, 3]];
const SPO2 = [[91, 3], [93, 2], [95, 1], [Infinity, 0]];
const TEMP = [[35.0, 3], [36.0, 1], [38.0, 0], [39.0, 1], [Infinity, 2]];

// Points for `value`: the first band whose upper edge is at or above it.
function band(value, bands) {
  for (const [edge, points] of bands) {
    if (value <= edge) return points;
  }
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
    for (const event of batch) {
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
