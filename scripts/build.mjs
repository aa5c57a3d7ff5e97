#!/usr/bin/env node
// Builds the package: tsc compiles src/ and test/ to dist/ (modules, types,
// source maps: what the tests run), then esbuild bundles the public entry
// points into dist/bundle/. Loading one bundled file instead of ~60 small
// ES modules roughly halves the time to import the package, which is most
// of a cold start.
//
// The bundle also takes in the pure-JavaScript libraries users never import
// themselves (yargs, youch, acorn, node-forge, ...: the devDependencies that
// src/ uses), so an install is a few packages rather than dozens; their
// licences go to dist/bundle/THIRD_PARTY_NOTICES.md. What stays external is
// exactly package.json's `dependencies`: libraries whose objects or types
// cross our API (undici's MockAgent, ws's WebSocket, ioredis's Redis).
//
// `node scripts/build.mjs` (and `npm install`'s prepare) builds from clean.
// The test command builds incrementally: tsc runs only when a source is newer
// than the last good compile (and then type-checks incrementally), outputs of
// deleted sources are removed, and the bundle is made only when asked for and
// older than the compile.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
// Written after a compile without errors: its mtime is the compile's time
const stampPath = path.join(dist, ".compiled");
const bundleEntries = { index: "dist/src/index.js", cli: "dist/src/cli/main.js" };
const bundlePath = path.join(dist, "bundle", "index.js");

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * Newest mtime of the compile's inputs. Folders count too: deleting or
 * renaming a file changes its folder's mtime.
 */
function newestInput() {
  let newest = Math.max(mtime(path.join(root, "tsconfig.json")), mtime(path.join(root, "package.json")));
  const walk = (dir) => {
    newest = Math.max(newest, mtime(dir));
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".ts")) newest = Math.max(newest, mtime(full));
    }
  };
  walk(path.join(root, "src"));
  walk(path.join(root, "test"));
  return newest;
}

/** Removes what tsc emitted for sources that no longer exist */
function pruneOutputs() {
  const walk = (dir) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
        continue;
      }
      const base = entry.name.replace(/\.(js|js\.map|d\.ts|d\.ts\.map)$/, "");
      if (base === entry.name) continue;
      const source = path.join(root, path.relative(dist, dir), base + ".ts");
      if (!fs.existsSync(source)) fs.rmSync(full);
    }
  };
  walk(path.join(dist, "src"));
  walk(path.join(dist, "test"));
}

function compile() {
  const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
  fs.rmSync(stampPath, { force: true });
  const result = spawnSync(
    process.execPath,
    [tsc, "-p", "tsconfig.json", "--incremental", "--tsBuildInfoFile", path.join(dist, ".tsbuildinfo")],
    { cwd: root, stdio: "inherit" }
  );
  if (result.status !== 0) throw new Error("TypeScript compilation failed");
  pruneOutputs();
  fs.writeFileSync(stampPath, "");
}

const packageJson = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const dependencies = Object.keys(packageJson.dependencies ?? {});

// Sync loads stay lazy in the bundle: src/ writes them as
// `const require = createRequire(import.meta.url)` then `require("x")`. For
// the bundle, that line goes, so esbuild sees a plain require() of a package
// it can bundle (evaluated on first call, not at import). Requires of
// dependencies and Node's modules are then served by the `require` each
// chunk defines (the banner).
const REQUIRE_LINE = /^[ \t]*const require = createRequire\(import\.meta\.url\);[ \t]*$/gm;
const requireIdiom = {
  name: "require-idiom",
  setup(build) {
    build.onLoad({ filter: /[\\/]dist[\\/]src[\\/].*\.js$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, "utf8");
      const contents = source.replace(REQUIRE_LINE, "");
      const other = contents.split("\n").find((line) => /createRequire\(/.test(line) && !/^import /.test(line));
      if (other !== undefined) {
        throw new Error(
          `${path.relative(root, args.path)}: write a sync load as \`const require = createRequire(import.meta.url);\` ` +
            `then require("x") (the bundle can't follow "${other.trim()}")`
        );
      }
      return { contents, loader: "js" };
    });
  },
};

async function bundle() {
  const result = await build({
    absWorkingDir: root,
    entryPoints: bundleEntries,
    outdir: "dist/bundle",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: dependencies.flatMap((name) => [name, `${name}/*`]),
    plugins: [requireIdiom],
    banner: {
      js: 'import { createRequire as __mfCreateRequire } from "node:module";\nconst require = __mfCreateRequire(import.meta.url);',
    },
    // Classes keep their names (bundling renames some, e.g. Response to
    // _Response, and workers can see Response.name)
    keepNames: true,
    metafile: true,
    logLevel: "warning",
  });
  const bundled = bundledPackages(result.metafile);
  copyYouchAssets(bundled);
  writeNotices(bundled);
  checkTypes();
}

/** The node_modules packages the bundle took code from: name → folder */
function bundledPackages(metafile) {
  const packages = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//.exec(input);
    if (match) packages.set(match[2], path.join(root, match[1]));
  }
  return new Map([...packages].sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * Youch reads its CSS and scripts at run time from `public/` beside its
 * module (`new URL("./public/", import.meta.url)`): in the bundle that is
 * dist/bundle/public/
 */
function copyYouchAssets(bundled) {
  const youch = bundled.get("youch");
  if (youch === undefined) return;
  const from = path.join(youch, "build", "public");
  if (!fs.existsSync(from)) throw new Error(`youch's assets moved: no ${path.relative(root, from)}`);
  fs.cpSync(from, path.join(dist, "bundle", "public"), { recursive: true });
}

const LICENSE_FILE = /^(licen[cs]e|copying|notice)([.-]|$)/i;

/** dist/bundle/THIRD_PARTY_NOTICES.md: each bundled package's licence, in full */
function writeNotices(bundled) {
  const sections = [];
  for (const [name, dir] of bundled) {
    const { version, license } = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    const files = fs.readdirSync(dir).filter((file) => LICENSE_FILE.test(file)).sort();
    if (files.length === 0) throw new Error(`${name} is bundled but has no licence file to reproduce`);
    const texts = files.map((file) => fs.readFileSync(path.join(dir, file), "utf8").trim());
    sections.push(`## ${name} ${version}\n\nLicense: ${license}\n\n${texts.map((t) => "```\n" + t + "\n```").join("\n\n")}`);
  }
  const text =
    "# Third-party notices\n\n" +
    "dist/bundle/ contains code from the following packages, bundled into it at build time. " +
    "Their licences follow.\n\n" +
    sections.join("\n\n") +
    "\n";
  fs.writeFileSync(path.join(dist, "bundle", "THIRD_PARTY_NOTICES.md"), text);
}

/**
 * The published types may only import Node's modules and `dependencies`:
 * anything else (a bundled library) isn't installed for the user
 */
function checkTypes() {
  const problems = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".d.ts")) {
        const text = fs.readFileSync(full, "utf8");
        for (const [, specifier] of text.matchAll(/(?:from |import\()"([^"]+)"/g)) {
          if (specifier.startsWith(".") || specifier.startsWith("node:")) continue;
          const name = specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/");
          if (!dependencies.includes(name)) problems.push(`${path.relative(root, full)} imports "${specifier}"`);
        }
      }
    }
  };
  walk(path.join(dist, "src"));
  if (problems.length > 0) {
    throw new Error(`The published types import packages users won't have:\n  ${problems.join("\n  ")}`);
  }
}

/**
 * Compiles (when a source changed since the last good compile, or always
 * with `clean`), then bundles (with `bundle`, when the bundle is older than
 * the compile). Returns what it did, for the caller to say.
 */
export async function buildPackage({ clean = true, bundle: wantBundle = true } = {}) {
  const done = [];
  if (clean) fs.rmSync(dist, { recursive: true, force: true });
  if (clean || mtime(stampPath) < newestInput()) {
    compile();
    done.push("compiled");
  }
  if (wantBundle && mtime(bundlePath) < mtime(stampPath)) {
    fs.rmSync(path.join(dist, "bundle"), { recursive: true, force: true });
    await bundle();
    done.push("bundled");
  }
  return done;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = performance.now();
  console.log("Building miniflare: TypeScript to dist/, then the bundle in dist/bundle/ …");
  buildPackage().then(
    () => console.log(`Built in ${((performance.now() - start) / 1000).toFixed(1)} s`),
    (error) => {
      console.error(error.message);
      process.exit(1);
    }
  );
}
