import path from "node:path";
import { dim, green, grey, red, reset, yellow } from "kleur/colors";
import { prefixError } from "./errors.js";

export enum LogLevel {
  NONE,
  ERROR,
  WARN,
  INFO,
  DEBUG,
  VERBOSE,
}

const LEVEL_PREFIX: Record<LogLevel, string> = {
  [LogLevel.NONE]: "",
  [LogLevel.ERROR]: "err",
  [LogLevel.WARN]: "wrn",
  [LogLevel.INFO]: "inf",
  [LogLevel.DEBUG]: "dbg",
  [LogLevel.VERBOSE]: "vrb",
};

const LEVEL_COLOUR: Record<LogLevel, (input: string) => string> = {
  [LogLevel.NONE]: reset,
  [LogLevel.ERROR]: red,
  [LogLevel.WARN]: yellow,
  [LogLevel.INFO]: green,
  [LogLevel.DEBUG]: grey,
  [LogLevel.VERBOSE]: (input) => dim(grey(input)),
};

const cwd = process.cwd();
const cwdNodeModules = path.join(cwd, "node_modules");

// Frames outside the user's project (or inside its dependencies) are dimmed
// so the user's own frames stand out
function dimInternalStackLine(line: string): string {
  if (
    line.startsWith("    at") &&
    (!line.includes(cwd) || line.includes(cwdNodeModules))
  ) {
    return dim(line);
  }
  return line;
}

export interface LogOptions {
  prefix?: string;
  suffix?: string;
}

/** Prints `[mf:inf] message` style lines at or below `level` */
export class Log {
  readonly #prefix: string;
  readonly #suffix: string;
  readonly #opts: LogOptions;

  constructor(readonly level = LogLevel.INFO, opts: LogOptions = {}) {
    const prefix = opts.prefix ?? "mf";
    const suffix = opts.suffix ?? "";
    this.#prefix = prefix ? prefix + ":" : "";
    this.#suffix = suffix ? ":" + suffix : "";
    this.#opts = opts;
  }

  /**
   * The log of the mounted worker `name`. A plain Log gives one naming it in
   * every line (`[mf:inf:api]`); a subclass is used as it is, as in Miniflare
   * 2 (so a test's log sees every line), unless it overrides this.
   */
  forMount(name: string): Log {
    if (Object.getPrototypeOf(this) !== Log.prototype) return this;
    return new Log(this.level, { ...this.#opts, suffix: name });
  }

  log(message: string): void {
    console.log(message);
  }

  logWithLevel(level: LogLevel, message: string): void {
    if (level <= this.level) {
      const prefix = `[${this.#prefix}${LEVEL_PREFIX[level]}${this.#suffix}]`;
      this.log(LEVEL_COLOUR[level](`${prefix} ${message}`));
    }
  }

  error(message: Error): void {
    if (this.level < LogLevel.ERROR) {
      // Nothing would be printed, so make sure the error isn't swallowed
      throw message;
    } else if (message.stack) {
      const lines = message.stack.split("\n").map(dimInternalStackLine);
      this.logWithLevel(LogLevel.ERROR, lines.join("\n"));
    } else {
      this.logWithLevel(LogLevel.ERROR, String(message));
    }
    if ((message as { cause?: unknown }).cause) {
      this.error(prefixError("Cause", (message as { cause?: unknown }).cause));
    }
  }

  warn(message: string): void {
    this.logWithLevel(LogLevel.WARN, message);
  }

  info(message: string): void {
    this.logWithLevel(LogLevel.INFO, message);
  }

  debug(message: string): void {
    this.logWithLevel(LogLevel.DEBUG, message);
  }

  verbose(message: string): void {
    this.logWithLevel(LogLevel.VERBOSE, message);
  }
}

/**
 * The API default: prints nothing, and rethrows errors passed to `error()`
 * so they are never silently dropped.
 */
export class NoOpLog extends Log {
  override log(): void {}

  override error(message: Error): void {
    throw message;
  }
}
