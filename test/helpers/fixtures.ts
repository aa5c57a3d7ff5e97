import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// Tests run from dist/test/..., fixtures stay in test/fixtures (never
// compiled), so find the repository root by walking up to package.json
function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("package.json not found");
    dir = parent;
  }
  return dir;
}

export const rootPath = findRoot();

export function fixturePath(...parts: string[]): string {
  return path.join(rootPath, "test", "fixtures", ...parts);
}
