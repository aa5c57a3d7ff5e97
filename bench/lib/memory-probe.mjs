// Runs a program (e.g. a CLI) in this process and answers memory questions
// about it over the IPC channel, without any change to the program itself:
//
//   spawn(node, [...flags, "bench/lib/memory-probe.mjs", <script>, ...args],
//         { stdio: [..., "ipc"] })
//   child.send({ type: "sample", id })  →  { type: "sample", id, rss, heapUsed, … }
//
// A sample is taken after two full garbage collections. `gc` is obtained the
// same way as in reload-memory.mjs (v8.setFlagsFromString("--expose-gc") and a
// fresh context), then the flag is switched off again, so contexts the program
// creates later (e.g. a simulator's worker sandboxes) get no `gc` global.
// The program sees argv as if it had been started directly:
// process.argv = [node, <script>, ...args].
import v8 from "node:v8";
import vm from "node:vm";
import path from "node:path";
import { pathToFileURL } from "node:url";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");
v8.setFlagsFromString("--no-expose-gc");

const [script, ...args] = process.argv.slice(2);
if (!script || typeof process.send !== "function") {
  process.stderr.write("usage: spawn with an IPC channel: node memory-probe.mjs <script> [args ...]\n");
  process.exit(2);
}

process.on("message", (msg) => {
  if (msg?.type !== "sample") return;
  gc();
  gc();
  const m = process.memoryUsage();
  process.send({
    type: "sample", id: msg.id,
    rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers,
  });
});
// The channel alone must not keep the program alive (it decides when to exit).
process.channel?.unref();

process.argv = [process.argv[0], path.resolve(script), ...args];
await import(pathToFileURL(path.resolve(script)).href);
