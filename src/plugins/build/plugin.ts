import path from "node:path";
import { MiniflareError } from "../../shared/errors.js";
import {
  type BeforeSetupResult,
  Option,
  OptionType,
  Plugin,
  type PluginContext,
} from "../../shared/plugin.js";

/** The build command failed; the code is its exit code */
export class BuildError extends MiniflareError<number> {}

export interface BuildOptions {
  buildCommand?: string;
  buildBasePath?: string;
  buildWatchPaths?: string[];
}

export class BuildPlugin extends Plugin<BuildOptions> implements BuildOptions {
  @Option({
    type: OptionType.STRING,
    alias: "B",
    description: "Command that builds the worker",
    fromWrangler: ({ build }) => build?.command,
  })
  buildCommand?: string;

  @Option({
    type: OptionType.STRING,
    description: "Folder to run the build command in",
    fromWrangler: ({ build }) => build?.cwd,
  })
  buildBasePath?: string;

  @Option({
    type: OptionType.ARRAY,
    description: "Path whose changes re-run the build",
    fromWrangler: ({ build, miniflare }) => {
      const paths = [...(miniflare?.build_watch_dirs ?? [])];
      if (build?.watch_dir) {
        paths.push(...(Array.isArray(build.watch_dir) ? build.watch_dir : [build.watch_dir]));
      }
      if (paths.length) return paths;
      if (build?.command) return ["src"];
    },
  })
  buildWatchPaths?: string[];

  constructor(ctx: PluginContext, options?: BuildOptions) {
    super(ctx);
    this.assignOptions(options);
  }

  async beforeSetup(): Promise<BeforeSetupResult> {
    const command = this.buildCommand;
    if (!command) return {};
    const { default: childProcess } = await import("node:child_process");
    const cwd = this.buildBasePath
      ? path.resolve(this.ctx.rootPath, this.buildBasePath)
      : this.ctx.rootPath;
    return new Promise((resolve, reject) => {
      const build = childProcess.spawn(command, {
        cwd,
        shell: true,
        stdio: "inherit",
        env: { ...process.env, MINIFLARE: "1" },
      });
      build.on("error", reject);
      build.on("exit", (exitCode) => {
        if (exitCode !== 0) {
          reject(new BuildError(exitCode ?? 0, `Build failed with exit code ${exitCode}`));
          return;
        }
        this.ctx.log.info("Build succeeded");
        const watch = this.buildWatchPaths?.map((p) => path.resolve(this.ctx.rootPath, p));
        resolve({ watch });
      });
    });
  }
}
