// What checking a WebSocket token message costs (`node scripts/bench-ws.mjs`): JSON.parse alone,
// then JSON.parse + the generated validator, per message, for a token with 5 alternatives (the
// dashboard receives hundreds a second; src/api/validate.ts runs exactly these two steps).
import { serverMessageValidators } from "../src/api/validators.gen.js";

const token = (seq) =>
  JSON.stringify({
    schema_version: 1,
    session_id: "gen-4f1c2a9e",
    seq,
    ts_ns: 1764700000000000000 + seq,
    type: "token",
    token_id: 1234,
    text: " Paris",
    distribution: "top_k",
    metrics: {
      prob: 0.61, surprisal: 0.71, entropy: 1.93, margin: 0.4, rank: 1, hbar_s: 1.17,
      fisher_trace: 0.55, varentropy: 0.8, coverage: 0.97, probe: null, exact: false,
    },
    top_k: Array.from({ length: 5 }, (_, i) => ({ token_id: 1234 + i, text: ` alt${i}`, logprob: -0.5 - i })),
    model: "SmolLM2-135M-Instruct",
    token_ts_ns: 1764700000000000000 + seq,
  });

const frames = Array.from({ length: 1000 }, (_, i) => token(i));
const validators = new Map(Object.entries(serverMessageValidators));
let sink = 0;
function run(label, step, rounds = 200) {
  for (let r = 0; r < 20; r++) for (const f of frames) sink += step(f) ? 1 : 0; // warm up
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (const f of frames) sink += step(f) ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - t0) / (rounds * frames.length);
  console.log(`${label}: ${(ns / 1000).toFixed(2)} µs per message`);
  return ns;
}
const parse = run("JSON.parse", (f) => JSON.parse(f).seq >= 0);
const both = run("JSON.parse + validate", (f) => {
  const m = JSON.parse(f);
  return validators.get(m.type)(m);
});
console.log(`validation: ${((both - parse) / 1000).toFixed(2)} µs per message (${frames[0].length} bytes each; sink ${sink > 0})`);
