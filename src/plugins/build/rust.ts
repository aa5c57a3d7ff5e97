// Run after `wrangler build` for Wrangler 1 "rust" projects (see
// core/wrangler.ts): joins wasm-bindgen's glue (named in pkg/package.json)
// and worker/worker.js into worker/generated/script.js and copies the wasm
// next to it, which is what Wrangler 1 uploaded. Runs in the project folder.
import fs from "node:fs";
import path from "node:path";

const pkg = JSON.parse(fs.readFileSync(path.join("pkg", "package.json"), "utf8"));
const files: string[] = pkg.files ?? [];
const glueName = files.find((file) => file.endsWith(".js"));
const wasmName = files.find((file) => file.endsWith(".wasm"));
if (glueName === undefined || wasmName === undefined) {
  console.error('pkg/package.json "files" must list the wasm-bindgen .js and .wasm');
  process.exit(1);
}

const generatedDir = path.join("worker", "generated");
fs.mkdirSync(generatedDir, { recursive: true });
const glue = fs.readFileSync(path.join("pkg", glueName), "utf8");
const worker = fs.readFileSync(path.join("worker", "worker.js"), "utf8");
fs.writeFileSync(path.join(generatedDir, "script.js"), `${glue} ${worker}`, "utf8");
fs.copyFileSync(path.join("pkg", wasmName), path.join(generatedDir, "script.wasm"));
