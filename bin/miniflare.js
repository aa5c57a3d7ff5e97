#!/usr/bin/env node
// Entry point of the `miniflare` command. No Node flags are needed: modules
// workers run without --experimental-vm-modules.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(
    `[mf:err] Miniflare requires at least Node.js 20.19.0. You're using v${process.versions.node}. Please update your version of Node.js.`
  );
  process.exit(1);
}

let main;
try {
  ({ main } = await import("../dist/bundle/cli.js"));
} catch (error) {
  // A checkout installed with --ignore-scripts (or whose build failed) has
  // no bundle: say how to make it rather than print a resolution error
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("dist/bundle/cli.js")) throw error;
  const { fileURLToPath } = await import("node:url");
  const root = fileURLToPath(new URL("..", import.meta.url));
  console.error(`[mf:err] Miniflare isn't built yet: run \`npm run build\` in ${root}`);
  process.exit(1);
}
main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  }
);
