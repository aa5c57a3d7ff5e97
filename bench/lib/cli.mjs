// Helpers for scenarios that run an implementation's CLI (http, soak).
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

/**
 * The CLI of the package that `modulePath` belongs to: the nearest package.json
 * above it with a "bin". Miniflare 2's bin (bootstrap.js) only re-spawns
 * dist/src/cli.js with --experimental-vm-modules, so that file is run directly
 * (this child already has the flag): one process, and signals reach the server.
 */
export function resolveCli(modulePath) {
  let dir = path.dirname(path.resolve(modulePath));
  for (;;) {
    const pkgFile = path.join(dir, "package.json");
    if (fs.existsSync(pkgFile)) {
      const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8"));
      const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.[pkg.name] ?? Object.values(pkg.bin ?? {})[0];
      if (bin) {
        const mf2Cli = path.join(dir, "dist", "src", "cli.js");
        if (path.basename(bin) === "bootstrap.js" && fs.existsSync(mf2Cli)) return mf2Cli;
        return path.join(dir, bin);
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json with a "bin" above ${modulePath}`);
    dir = up;
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
