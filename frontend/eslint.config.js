// ESLint (flat config): typescript-eslint, React hooks, and the dashboard's import boundaries.
//
// Layers, one way only (bulletproof-react's rule): app → features → shared code.
// - A feature (src/features/<name>) imports no other feature; the app composes them (App.tsx).
// - Shared code (src/shared, src/api, src/lib, src/config) imports no feature.
// The boundaries are import-x's `no-restricted-paths`: zones on resolved files, so a relative
// `../../live/x` and any other spelling of the same file are caught alike.
import js from "@eslint/js";
import { createNodeResolver, importX } from "eslint-plugin-import-x";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

const FEATURES = ["alerts", "live", "sessions"];

export default tseslint.config(
  { ignores: ["dist", "node_modules", "src/api/*.gen.*"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  reactHooks.configs.flat["recommended-latest"],
  {
    files: ["**/*.{ts,tsx}"],
    languageOptions: { globals: globals.browser },
    plugins: { "import-x": importX },
    settings: {
      "import-x/resolver-next": [createNodeResolver({ extensions: [".ts", ".tsx", ".js", ".mjs", ".json"] })],
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "import-x/no-restricted-paths": [
        "error",
        {
          zones: [
            ...FEATURES.map((name) => ({
              target: `./src/features/${name}`,
              from: "./src/features",
              except: [`./${name}`],
              message: "A feature does not import another feature: move the shared piece to src/shared, or compose in src/app.",
            })),
            {
              target: ["./src/shared", "./src/api", "./src/lib", "./src/config"],
              from: "./src/features",
              message: "Shared code does not import a feature.",
            },
          ],
        },
      ],
    },
  },
  {
    // Node scripts; the e2e scenarios also run functions in the page (page.evaluate).
    files: ["e2e/**/*.{js,mjs}", "*.config.{js,ts}", "scripts/**/*.{js,mjs}"],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
);
