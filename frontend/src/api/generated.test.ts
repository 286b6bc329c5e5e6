/**
 * The generated contract code (schema.gen.ts, ws.gen.ts, validators.gen.js/.d.ts) is what
 * `npm run gen:api` makes of the committed schemas today: this fails when docs/schemas moved on
 * and the files were not regenerated (or were edited by hand).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain Node script, without types
import { generate } from "../../scripts/gen-api.mjs";

describe("generated API code", () => {
  it("is up to date with docs/schemas (run `npm run gen:api`)", async () => {
    const files = (await generate()) as Record<string, string>;
    expect(Object.keys(files).length).toBe(4);
    for (const [path, text] of Object.entries(files)) {
      expect(readFileSync(path, "utf8"), `${path} is stale: run \`npm run gen:api\``).toBe(text);
    }
  }, 60_000);

  it("validates without Ajv or eval in the browser: the validators import nothing", () => {
    const js = readFileSync(new URL("./validators.gen.js", import.meta.url), "utf8");
    expect(js).not.toMatch(/\bimport\b|\brequire\(|new Function|\beval\(/);
  });
});
