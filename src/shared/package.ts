import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

/**
 * The folder holding this package's package.json. Found by walking up from
 * this file, so it works both from the compiled modules (dist/src/...) and
 * from the bundle (dist/...).
 */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const { name } = JSON.parse(fs.readFileSync(file, "utf8"));
      if (name === "miniflare") return (root = dir);
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("Couldn't find miniflare's package.json");
    dir = parent;
  }
}

export function packageVersion(): string {
  const file = path.join(packageRoot(), "package.json");
  return JSON.parse(fs.readFileSync(file, "utf8")).version;
}
