// Write Weir plugins in JavaScript (componentize-js).
//
// A plugin is a class: its constructor receives the step's config string (a
// thrown error refuses the plugin) and `process(batch, out)` handles each
// batch (an array of events). `exportProcessor` turns it into the `init` and `process` exports of
// the `processor` world:
//
//   import { exportProcessor } from "./weir_plugin.js";
//   class Identity {
//     constructor(config) {}
//     process(batch, out) { for (const event of batch) out.forward(event); }
//   }
//   export const { init, process } = exportProcessor(Identity);
//
// The batch arrives in the flat layout of the WIT contract (one byte buffer
// for all payloads); events are views into it, decoded only when asked.

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const MAIN_OUTPUT = "out";

/** One input event: its index in the batch, its bytes and its event time. */
export class Event {
  constructor(batch, index, start, end, whole) {
    this.batch = batch;
    this.index = index;
    this.start = start;
    this.end = end;
    this.whole = whole;
  }
  /** The payload's bytes (a view, not a copy). */
  get payload() {
    return this.batch.payloads.subarray(this.start, this.end);
  }
  /** The payload as a string. */
  text() {
    // An ASCII batch is decoded once and sliced; otherwise decode a copy of
    // the event's bytes (StarlingMonkey's TextDecoder copies a view's whole
    // buffer, which made a batch cost quadratic time).
    if (this.whole !== null) return this.whole.slice(this.start, this.end);
    return decoder.decode(this.batch.payloads.slice(this.start, this.end));
  }
  /** The payload parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }
  /** Event time, milliseconds since the Unix epoch. */
  get timestampMs() {
    return Number(this.batch.timestamps[this.index]);
  }
}

// The batch's events as an array: StarlingMonkey interprets (no JIT), and a
// generator costs it about 3 µs per event, an indexed loop a few hundred ns.
function events(batch) {
  const { payloads, ends } = batch;
  // When every byte is ASCII, byte offsets are string offsets.
  const whole = decoder.decode(payloads);
  const ascii = whole.length === payloads.length ? whole : null;
  const list = new Array(ends.length);
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    list[i] = new Event(batch, i, start, ends[i], ascii);
    start = ends[i];
  }
  return list;
}

/** What the plugin does with each event: emit to an output, or reject it. */
export class Outcomes {
  constructor(capacity) {
    this.outputs = [MAIN_OUTPUT];
    this.bytes = new Uint8Array(Math.max(capacity, 1024));
    this.size = 0;
    this.ends = [];
    this.inputs = [];
    this.ports = [];
    this.rejected = [];
  }

  /** Emits `value` (an object is sent as JSON, a string as is) derived from `event`. */
  emit(event, value, output = MAIN_OUTPUT) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    // At most 3 bytes per UTF-16 unit.
    this.reserve(text.length * 3);
    const { written } = encoder.encodeInto(text, this.bytes.subarray(this.size));
    this.push(event, written, output);
  }

  /** Sends `event` on unchanged (no bytes cross the boundary). */
  forward(event, output = MAIN_OUTPUT) {
    this.push(event, 0, output);
  }

  /** Refuses `event`: it goes to the dead-letter output with `reason`. */
  reject(event, reason) {
    this.rejected.push({ input: event.index, reason: String(reason) });
  }

  push(event, written, output) {
    let port = this.outputs.indexOf(output);
    if (port < 0) port = this.outputs.push(output) - 1;
    this.size += written;
    this.ends.push(this.size);
    this.inputs.push(event.index);
    this.ports.push(port);
  }

  reserve(extra) {
    if (this.size + extra <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.size + extra));
    grown.set(this.bytes.subarray(0, this.size));
    this.bytes = grown;
  }

  toWit() {
    return {
      outputs: this.outputs,
      emitted: {
        payloads: this.bytes.subarray(0, this.size),
        ends: new Uint32Array(this.ends),
        inputs: new Uint32Array(this.inputs),
        ports: new Uint16Array(this.ports),
      },
      rejected: this.rejected,
    };
  }
}

/** Returns the world's `init` and `process` exports for a plugin class. */
export function exportProcessor(PluginClass) {
  let plugin;
  return {
    init(config) {
      try {
        plugin = new PluginClass(config);
      } catch (e) {
        // componentize-js returns a thrown value as the `err` of the result.
        throw e instanceof Error ? e.message : String(e);
      }
    },
    process(batch) {
      const out = new Outcomes(batch.payloads.length);
      plugin.process(events(batch), out);
      return out.toWit();
    },
  };
}
