// Transpiles the harness: the runners (plain Node, driving code-server + Chromium) and the mocha
// suite that runs inside the real extension host. The suite bundles the extension's own modules
// for their pure parts; `vscode` and `mocha` stay external (the host provides `vscode`).
"use strict";
const esbuild = require("esbuild");
const path = require("path");

const common = { bundle: true, platform: "node", format: "cjs", target: "node20", sourcemap: "inline", logLevel: "warning" };

Promise.all([
  esbuild.build({
    ...common,
    entryPoints: ["src/run-host-tests.ts", "src/run-ui-tests.ts", "src/run-walkthrough.ts", "src/run-workspace-tests.ts"],
    outdir: "out",
    packages: "external",
  }),
  esbuild.build({
    ...common,
    entryPoints: ["src/suite/index.ts"],
    outfile: "out/suite/index.js",
    external: ["vscode", "mocha"],
    // the extension's modules import vscode-languageclient from the extension's node_modules
    nodePaths: [path.resolve(__dirname, "..", "node_modules")],
  }),
]).catch((e) => {
  console.error(e);
  process.exit(1);
});
