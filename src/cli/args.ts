// Command-line parsing derived from the plugins' @Option metadata.
//
// One yargs option is declared per @Option (the table is built in help.ts).
// A small pre-pass over the tokens rejects unknown flags and decides whether
// boolean/string flags take the next token; yargs then does the tokenising
// (aliases, short groups, `--no-x`, `=`, `--`, repeats); finally each value
// is checked and converted according to its OptionType, with Miniflare 2's
// error messages. Pure: it reads the argv it is given, never process.argv, and
// never exits (main.ts turns ParseErrors into help output and exit codes).
import yargs, { type Options as YargsOptions } from "yargs";
import { MiniflareError, OptionType, type PluginSignatures } from "../shared/index.js";
import { packageVersion } from "../shared/package.js";
import { builtinArgs, type CliArg, HELP, pluginArgs, VERSION } from "./help.js";

export type ParseErrorCode =
  | "ERR_HELP" // --help/-h given (no message)
  | "ERR_VERSION" // --version/-v given (message is the version)
  | "ERR_OPTION" // unknown flag
  | "ERR_VALUE"; // a flag's value doesn't match its type

export class ParseError extends MiniflareError<ParseErrorCode> {}

// A following token "looks like a script" when it has a JavaScript/TypeScript
// file extension.
const scriptExtension = /\.(?:[cm]?js|[cm]?ts|jsx|tsx)$/i;
const numeric = (s: string) => s.trim() !== "" && Number.isFinite(Number(s));

/**
 * Whether `next` (a separate token after a bare flag) is the flag's value.
 *
 * Miniflare 2 let boolean/string flags take any following token, so
 * `miniflare --kv-persist worker.js` persisted KV to a directory called
 * "worker.js" and ran no script. Here, for BOOLEAN_STRING and BOOLEAN_NUMBER
 * flags written without "=":
 * - a token starting with "-" is never a value (it's the next flag);
 * - BOOLEAN_STRING takes the token unless it looks like a script file
 *   (ends with .js/.mjs/.cjs/.ts/.mts/.cts/.jsx/.tsx), so
 *   `--kv-persist ./data worker.js` persists to ./data and runs worker.js,
 *   and `--kv-persist worker.js` persists to the default location;
 * - BOOLEAN_NUMBER takes the token only when it's numeric.
 * `--flag=value` always takes the value, whatever it looks like.
 */
function takesValue(type: OptionType, next: string | undefined): next is string {
  if (next === undefined || next.startsWith("-")) return false;
  if (type === OptionType.BOOLEAN_NUMBER) return numeric(next);
  return !scriptExtension.test(next);
}

interface Lookup {
  /** By flag name, aliases included */
  flags: Map<string, CliArg>;
  /** Single-letter aliases */
  shorts: Map<string, CliArg>;
}

// yargs-parser's negative numbers: values (or positionals), never flags
const negativeNumber = /^-(?:\d+(?:\.\d+)?|\.\d+)$/;

function unknownOption(flag: string): never {
  throw new ParseError("ERR_OPTION", `Unexpected option: ${flag}`);
}

/**
 * Walks a short flag group ("-mw", "-p8787", "-O=url") the way yargs-parser
 * does, throwing ERR_OPTION for the first letter that isn't an alias. Returns
 * the index (in the letters) of the last flag, and its attached value if any.
 */
function shortGroup(token: string, lookup: Lookup): { last: number; value?: string } {
  const letters = token.slice(1);
  for (let j = 0; j < letters.length; j++) {
    if (!lookup.shorts.has(letters[j])) unknownOption(`-${letters[j]}`);
    const next = letters.slice(j + 1);
    if (next.startsWith("=")) return { last: j, value: next.slice(1) };
    if (
      next === "-" ||
      (/[A-Za-z]/.test(letters[j]) && /^-?\d+(\.\d*)?(e-?\d+)?$/.test(next)) ||
      /^\W/.test(next)
    ) {
      return { last: j, value: next };
    }
  }
  return { last: letters.length - 1 };
}

/**
 * Runs before yargs, over the raw tokens:
 * - throws ERR_OPTION for the first unknown flag (yargs' own unknown-option
 *   check treats "--kv-anything" as known because "kv" is);
 * - rewrites BOOLEAN_STRING/BOOLEAN_NUMBER flags (long, alias, or last in a
 *   short group) to `--name=value`, or `--name=` when bare, applying
 *   `takesValue()`, so yargs (which sees them as strings) can't swallow the
 *   script;
 * - records non-boolean values given to BOOLEAN flags (yargs would coerce
 *   `--watch=yes` to true), to be reported in option order later.
 */
function preprocess(argv: string[], lookup: Lookup, badBooleans: Map<string, string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (!token.startsWith("-") || token === "-" || negativeNumber.test(token)) {
      out.push(token);
      continue;
    }
    // The flag, its value if attached, and any flags grouped before it
    let arg: CliArg | undefined;
    let value: string | undefined;
    let prefix = "";
    if (token.startsWith("--")) {
      const equals = token.indexOf("=");
      const flag = equals === -1 ? token : token.substring(0, equals);
      if (equals !== -1) value = token.substring(equals + 1);
      arg = lookup.flags.get(flag.substring(2));
      if (arg === undefined) {
        const negated = flag.startsWith("--no-") && lookup.flags.has(flag.substring(5));
        if (!negated || value !== undefined) unknownOption(flag);
      }
    } else {
      const group = shortGroup(token, lookup);
      arg = lookup.shorts.get(token[group.last + 1]);
      value = group.value;
      prefix = token.substring(1, group.last + 1);
    }
    const type = arg?.meta.type;
    if (
      arg !== undefined &&
      (type === OptionType.BOOLEAN_STRING || type === OptionType.BOOLEAN_NUMBER)
    ) {
      if (prefix !== "") out.push(`-${prefix}`);
      if (value === undefined && takesValue(type, argv[i + 1])) value = argv[++i];
      out.push(`--${arg.name}=${value ?? ""}`);
      continue;
    }
    if (
      arg !== undefined &&
      type === OptionType.BOOLEAN &&
      value !== undefined &&
      value !== "true" &&
      value !== "false" &&
      !badBooleans.has(arg.name)
    ) {
      badBooleans.set(arg.name, value);
    }
    out.push(token);
  }
  return out;
}

function unexpected(arg: CliArg, display: unknown, expected: string): never {
  const name = arg.meta.type === OptionType.STRING_POSITIONAL ? arg.name : `--${arg.name}`;
  throw new ParseError(
    "ERR_VALUE",
    `Unexpected value for ${name}: ${JSON.stringify(display)} (expected ${expected})`
  );
}

/**
 * Converts yargs' value for one argument (a string, boolean, or array of them
 * when repeated) to the option's value, throwing ERR_VALUE on a mismatch.
 */
function normalise(arg: CliArg, value: unknown, badBoolean: string | undefined): unknown {
  const { type, typeFormat, fromEntries } = arg.meta;
  const numbers = type === OptionType.NUMBER || type === OptionType.BOOLEAN_NUMBER;
  // What a value means: bare flags other than strings/lists arrive as "" (see
  // preprocess()) and mean true (an error for NUMBER, quoted as `true` like
  // Miniflare 2); numeric strings are numbers where allowed
  const meaning = (v: unknown) =>
    v === "" && (numbers || type === OptionType.BOOLEAN_STRING)
      ? true
      : numbers && typeof v === "string" && numeric(v)
        ? Number(v)
        : v;
  // Repeated flags are quoted as an array of their meanings, as Miniflare 2 did
  const display = (v: unknown) => (Array.isArray(v) ? v.map(meaning) : v);
  switch (type) {
    case OptionType.BOOLEAN: {
      // Declared as a boolean array so that repeats are visible. The last
      // wins, so `--watch --no-watch` (say, a flag appended to an npm
      // script's) turns it off, as in Miniflare 2
      if (badBoolean !== undefined) unexpected(arg, badBoolean, "boolean");
      const values = value as boolean[];
      return values[values.length - 1];
    }
    case OptionType.NUMBER:
      if (typeof value !== "string" || !numeric(value)) {
        unexpected(arg, Array.isArray(value) ? display(value) : meaning(value), "number");
      }
      return Number(value);
    case OptionType.STRING:
    case OptionType.STRING_POSITIONAL:
      if (typeof value !== "string") unexpected(arg, value, "string");
      // A bare flag (`--host` with no value) means true: not a string, and
      // an empty host would listen on every interface
      if (value === "" && type === OptionType.STRING) unexpected(arg, true, "string");
      return value;
    case OptionType.BOOLEAN_STRING:
      if (Array.isArray(value)) {
        // A negation (`--cf-fetch --no-cf-fetch`) is the last word; two
        // values are ambiguous
        if (!value.includes(false)) unexpected(arg, display(value), "boolean/string");
        value = value[value.length - 1];
      }
      return value === "" ? true : value;
    case OptionType.BOOLEAN_NUMBER: {
      if (Array.isArray(value)) unexpected(arg, display(value), "boolean/number");
      const result = meaning(value);
      if (typeof result !== "boolean" && typeof result !== "number") {
        unexpected(arg, value, "boolean/number");
      }
      return result;
    }
    case OptionType.ARRAY:
    case OptionType.OBJECT: {
      const expected = type === OptionType.ARRAY ? "array" : typeFormat ?? "KEY=VALUE";
      const values = Array.isArray(value) ? value : [value];
      // `--no-kv` gives false
      for (const v of values) if (typeof v !== "string") unexpected(arg, v, expected);
      if (type === OptionType.ARRAY) return values;
      const entries = (values as string[]).map((element): [string, string] => {
        const equals = element.indexOf("=");
        if (equals === -1) unexpected(arg, element, expected);
        return [element.substring(0, equals), element.substring(equals + 1)];
      });
      return (fromEntries ?? Object.fromEntries)(entries);
    }
    default:
      return undefined;
  }
}

/**
 * Parses command-line arguments (without the node/script prefix, i.e.
 * `process.argv.slice(2)`) into one flat options object containing only the
 * options given, keyed by option key (e.g. `{ scriptPath: "worker.js",
 * kvNamespaces: ["NS"], port: 8787 }`). `--debug`/`--verbose` appear as
 * `debug`/`verbose` keys whether or not a plugin declares them.
 *
 * Throws ParseError: ERR_OPTION for unknown flags, then ERR_HELP (-h/--help),
 * ERR_VERSION (-v/--version, message = version), then ERR_VALUE for the first
 * bad value in plugin/declaration order.
 */
export function parseArgv(plugins: PluginSignatures, argv: string[]): Record<string, unknown> {
  const declared = pluginArgs(plugins).flatMap(([, args]) => args);
  const args = [...builtinArgs(declared), ...declared];
  let positional: CliArg | undefined;
  const lookup: Lookup = { flags: new Map(), shorts: new Map() };
  const options: Record<string, YargsOptions> = {};
  const define = (flag: string, arg: CliArg) => {
    if (lookup.flags.has(flag)) throw new TypeError(`Duplicate command-line flag: ${flag}`);
    lookup.flags.set(flag, arg);
    if (flag.length === 1) lookup.shorts.set(flag, arg);
  };
  for (const arg of args) {
    const { type, alias } = arg.meta;
    if (type === OptionType.STRING_POSITIONAL) {
      if (positional !== undefined) {
        throw new TypeError(`Multiple positional options: ${positional.key}, ${arg.key}`);
      }
      positional = arg;
      continue;
    }
    define(arg.name, arg);
    if (alias !== undefined) define(alias, arg);
    // Everything but booleans is a string to yargs: values are converted and
    // checked by normalise() so errors can quote exactly what was typed.
    // (BOOLEAN flags are boolean arrays so that repeats are visible.)
    options[arg.name] =
      type === OptionType.BOOLEAN
        ? { type: "boolean", array: true, alias }
        : { type: "string", alias };
  }

  const badBooleans = new Map<string, string>();
  const parsed = yargs()
    // Before .options(), else yargs reserves "help" and "version"
    .help(false)
    .version(false)
    .parserConfiguration({
      "camel-case-expansion": false,
      "dot-notation": false,
      "parse-numbers": false,
      "parse-positional-numbers": false,
      "greedy-arrays": false,
      "duplicate-arguments-array": true,
      // Safety net: anything unknown that got past preprocess() lands in `_`
      "unknown-options-as-args": true,
      "populate--": true,
      "strip-aliased": true,
    })
    .options(options)
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new ParseError("ERR_VALUE", message);
    })
    .parseSync(preprocess(argv, lookup, badBooleans)) as Record<string, unknown>;

  // preprocess() rejected unknown flags, so flag-like positionals are
  // stray negative numbers ("-1"); a lone "-" is a value
  const rest = ((parsed._ ?? []) as unknown[]).map(String);
  for (const token of rest) {
    if (token.length > 1 && token.startsWith("-")) unknownOption(token.split("=")[0]);
  }
  const positionals = [...rest, ...((parsed["--"] ?? []) as unknown[]).map(String)];
  const flag = (name: string) => (parsed[name] as boolean[] | undefined)?.at(-1) === true;
  if (flag("help")) throw new ParseError("ERR_HELP");
  if (flag("version")) throw new ParseError("ERR_VERSION", packageVersion());
  if (positional === undefined && positionals.length > 0) {
    throw new ParseError("ERR_OPTION", `Unexpected argument: ${positionals[0]}`);
  }

  const result: Record<string, unknown> = {};
  for (const arg of args) {
    if (arg === HELP || arg === VERSION) continue;
    let value: unknown;
    if (arg === positional) {
      value = positionals.length > 1 ? positionals : positionals[0];
    } else {
      value = parsed[arg.name];
    }
    if (value === undefined) continue;
    const normalised = normalise(arg, value, badBooleans.get(arg.name));
    if (normalised !== undefined) result[arg.key] = normalised;
  }
  return result;
}

export { buildHelp } from "./help.js";
export type { CliArg } from "./help.js";
