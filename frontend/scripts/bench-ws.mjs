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
/** ns per message of `step` over the frames, the fastest of `tries` runs (the machine is shared). */
function time(step, rounds = 50) {
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (const f of frames) sink += step(f) ? 1 : 0;
  return Number(process.hrtime.bigint() - t0) / (rounds * frames.length);
}
const parse = (f) => JSON.parse(f).seq >= 0;
const both = (f) => {
  const m = JSON.parse(f);
  return validators.get(m.type)(m);
};
const best = { parse: Infinity, both: Infinity };
for (let i = 0; i < 15; i++) {
  // Alternated, so a busy moment costs both alike.
  best.parse = Math.min(best.parse, time(parse));
  best.both = Math.min(best.both, time(both));
}
const us = (ns) => `${(ns / 1000).toFixed(2)} µs`;
console.log(`JSON.parse: ${us(best.parse)} per message; JSON.parse + validate: ${us(best.both)}`);
console.log(`validation: ${us(best.both - best.parse)} per message (${frames[0].length} bytes each; sink ${sink > 0})`);
