// Times a JavaScript plugin's `process` under Node, with its own SDK, on the
// same events and batch size as `weir plugin bench`: run it with
// `node --jitless` (the fair comparison: componentize-js has no JIT) and
// with plain `node`.
//
//   node [--jitless] scripts/bench/vitals_native.mjs <plugin-folder> <events.ndjson> [batch] [rounds]
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [folder, events, batchArg, roundsArg] = process.argv.slice(2);
const batchSize = Number(batchArg ?? 1000);
const rounds = Number(roundsArg ?? 5);
const plugin = await import(pathToFileURL(resolve(folder, "app.js")).href);
plugin.init("");

const encoder = new TextEncoder();
const lines = readFileSync(events, "utf8").split("\n").filter((l) => l.length > 0);
const batches = [];
for (let i = 0; i < lines.length; i += batchSize) {
  const chunk = lines.slice(i, i + batchSize).map((l) => encoder.encode(l));
  const size = chunk.reduce((n, b) => n + b.length, 0);
  const payloads = new Uint8Array(size);
  const ends = new Uint32Array(chunk.length);
  let end = 0;
  chunk.forEach((b, k) => {
    payloads.set(b, end);
    end += b.length;
    ends[k] = end;
  });
  batches.push({ payloads, ends, timestamps: new BigInt64Array(chunk.length) });
}
const results = [];
for (let r = 0; r < rounds; r++) {
  const started = process.hrtime.bigint();
  for (const b of batches) plugin.process(b);
  results.push(Number(process.hrtime.bigint() - started) / lines.length);
}
results.sort((a, b) => a - b);
const mode = process.execArgv.includes("--jitless") ? "node --jitless" : "node (JIT)";
console.log(
  `${mode} ${process.version}: ${results[Math.floor(rounds / 2)].toFixed(1)} ns/event at batch ${batchSize} ` +
    `(median of ${rounds} rounds of ${lines.length} events, ${results[0].toFixed(1)}-${results[rounds - 1].toFixed(1)})`,
);
