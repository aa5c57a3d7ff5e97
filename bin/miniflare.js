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

const { main } = await import("../dist/bundle/cli.js");
main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  }
);
