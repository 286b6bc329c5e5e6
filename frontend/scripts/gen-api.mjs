// The dashboard's contract code, generated from the committed schemas (docs/schemas): `npm run gen:api`.
//
//   src/api/schema.gen.ts      REST types (openapi-typescript) for the typed calls of openapi-fetch
//   src/api/ws.gen.ts          WebSocket message types (json-schema-to-typescript)
//   src/api/validators.gen.js  run-time validators (Ajv, compiled ahead of time: standalone code,
//   src/api/validators.gen.d.ts  no schema compilation and no eval in the browser)
//
// What the gateway sends is checked *forward-compatibly*: `additionalProperties: false` is dropped
// from the server's schemas (a client ignores fields it does not know, docs/api.md) and the
// schema's defaults are filled in (Ajv `useDefaults`), so a field with a default is always there.
// src/api/generated.test.ts fails when these files are stale.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import standaloneCode from "ajv/dist/standalone/index.js";
import { compile } from "json-schema-to-typescript";
import openapiTS, { astToString } from "openapi-typescript";

const FRONTEND = join(dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = join(FRONTEND, "..");
const SCHEMAS = join(ROOT, "docs", "schemas");
const OUT = join(FRONTEND, "src", "api");

/** REST responses the dashboard reads: validator name → component schema. */
const REST = {
  validateConfig: "ConfigResponse",
  validateGenerateResponse: "GenerateResponse",
  validateSessionDetail: "SessionDetail",
  validateSessionList: "SessionList",
};

/**
 * The WebSocket's server messages. Until the gateway's protocol schema (docs/schemas/ws-server.json)
 * is committed, the data messages that are also REST come from the OpenAPI document's components,
 * and the lifecycle ones (session, replayed, done, missed, error, pong) are still typed in types.ts.
 * Once it is there: WS_SERVER = "ws-server.json".
 */
const WS_SERVER = null;
const WS_FROM_OPENAPI = {
  token: "TokenMessage",
  alert: "AlertEvent",
  risk: "RiskEvent",
  scores: "ScoresEvent",
  summary: "SummaryEvent", // in `done`
};

/** The gateway's OpenAPI document: the committed one, else the gateway app's own (no server needed). */
export function readOpenapi() {
  const file = join(SCHEMAS, "openapi.json");
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8"));
  const python = join(ROOT, ".venv", "bin", "python");
  const code = "import json; from services.gateway.app import create_app; print(json.dumps(create_app().openapi()))";
  return JSON.parse(execFileSync(python, ["-c", code], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 }));
}

/** A copy of a schema that accepts fields it does not know. */
function open(schema) {
  return JSON.parse(JSON.stringify(schema), (k, v) =>
    v && typeof v === "object" && !Array.isArray(v) && v.additionalProperties === false
      ? Object.fromEntries(Object.entries(v).filter(([key]) => key !== "additionalProperties"))
      : v,
  );
}

function validators(openapi, wsServer) {
  const ajv = new Ajv2020({
    strict: false,
    useDefaults: true,
    inlineRefs: false,
    messages: true,
    discriminator: true,
    code: { source: true, esm: true, optimize: true },
  });
  ajv.addSchema(open(openapi), "openapi.json");
  const refs = Object.fromEntries(Object.entries(REST).map(([fn, c]) => [fn, `openapi.json#/components/schemas/${c}`]));
  if (wsServer) {
    ajv.addSchema(open(wsServer), "ws-server.json");
    refs.validateServerMessage = "ws-server.json";
  } else {
    for (const [type, c] of Object.entries(WS_FROM_OPENAPI)) refs[`validate_${type}`] = `openapi.json#/components/schemas/${c}`;
  }
  let js = standaloneCode(ajv, refs);
  if (/\brequire\(/.test(js)) {
    // Ajv's runtime helpers (ucs2length for unicode-aware lengths…) as ES imports.
    const imports = new Map();
    js = js.replace(/require\("(ajv\/dist\/runtime\/[\w]+)"\)\.default/g, (_, mod) => {
      const name = `rt_${mod.split("/").pop()}`;
      imports.set(name, mod);
      return name;
    });
    js = [...imports].map(([n, m]) => `import ${n} from "${m}.js";`).join("") + js;
  }
  const dts = [
    HEADER,
    `import type { ValidateFunction } from "ajv";`,
    `import type { components } from "./schema.gen";`,
    ...Object.entries(REST).map(([fn, c]) => `export declare const ${fn}: ValidateFunction<components["schemas"]["${c}"]>;`),
    ...(wsServer
      ? [`import type { ServerMessage } from "./ws.gen";`, `export declare const validateServerMessage: ValidateFunction<ServerMessage>;`]
      : Object.entries(WS_FROM_OPENAPI).map(
          ([t, c]) => `export declare const validate_${t}: ValidateFunction<components["schemas"]["${c}"]>;`,
        )),
    ``,
  ].join("\n");
  return { js: `${HEADER}\n/* eslint-disable */\n// @ts-nocheck\n${js}\n`, dts };
}

const HEADER = "// Generated by `npm run gen:api` (scripts/gen-api.mjs) from docs/schemas. Do not edit.";

async function wsTypes(wsServer, wsClient) {
  const opts = { bannerComment: HEADER, additionalProperties: false, strictIndexSignatures: true, format: false };
  const server = await compile({ ...wsServer, title: "ServerMessage" }, "ServerMessage", opts);
  const client = await compile({ ...wsClient, title: "ClientMessage" }, "ClientMessage", { ...opts, bannerComment: "" });
  return `${server}\n${client}`;
}

/** Every generated file: path → content. */
export async function generate() {
  const openapi = readOpenapi();
  const ws = WS_SERVER ? JSON.parse(readFileSync(join(SCHEMAS, WS_SERVER), "utf8")) : null;
  const files = {};
  files[join(OUT, "schema.gen.ts")] = `${HEADER}\n${astToString(await openapiTS(openapi, { defaultNonNullable: true }))}`;
  const v = validators(openapi, ws);
  files[join(OUT, "validators.gen.js")] = v.js;
  files[join(OUT, "validators.gen.d.ts")] = v.dts;
  if (ws) {
    const wsClient = JSON.parse(readFileSync(join(SCHEMAS, "ws-client.json"), "utf8"));
    files[join(OUT, "ws.gen.ts")] = await wsTypes(ws, wsClient);
  }
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [path, text] of Object.entries(await generate())) {
    writeFileSync(path, text);
    console.log(`wrote ${path.slice(FRONTEND.length + 1)}`);
  }
}
