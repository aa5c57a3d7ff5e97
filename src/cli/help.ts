// The command-line flag table derived from @Option metadata, and the --help
// text built from it. args.ts parses with the same table.
import { bold, grey } from "kleur/colors";
import { OptionType, kebabCase, spaceCase, type OptionMetadata, type PluginSignatures } from "../shared/index.js";

/** One command-line flag (or the positional) and the option it sets */
export interface CliArg {
  /** Option key in the parsed result, e.g. "kvNamespaces" */
  key: string;
  /** Flag name without dashes, e.g. "kv" (or "script" for the positional) */
  name: string;
  meta: OptionMetadata;
}

// Flags every command line accepts. --debug/--verbose are declared by
// CorePlugin in a full plugin set (as in Miniflare 2); when the given plugins
// don't declare them they're still accepted, and returned by parseArgv() as
// `debug`/`verbose` keys, so the parsed result is always one flat object.
export const HELP: CliArg = {
  key: "help",
  name: "help",
  meta: { type: OptionType.BOOLEAN, alias: "h", description: "Show help" },
};
export const VERSION: CliArg = {
  key: "version",
  name: "version",
  meta: { type: OptionType.BOOLEAN, alias: "v", description: "Show version number" },
};
const DEBUG: CliArg = {
  key: "debug",
  name: "debug",
  meta: { type: OptionType.BOOLEAN, alias: "d", description: "Enable debug logging" },
};
const VERBOSE: CliArg = {
  key: "verbose",
  name: "verbose",
  meta: { type: OptionType.BOOLEAN, alias: "V", description: "Enable verbose logging" },
};

/** Built-in flags (help, version, debug, verbose) the plugins don't declare */
export function builtinArgs(declared: CliArg[]): CliArg[] {
  const taken = new Set(declared.map((arg) => arg.name));
  return [HELP, VERSION, DEBUG, VERBOSE].filter((arg) => !taken.has(arg.name));
}

/** "KVPlugin" → "KV Options", "DurableObjectsPlugin" → "Durable Objects Options" */
export function sectionTitle(pluginName: string): string {
  return spaceCase(pluginName.replace(/Plugin$/, "Options"));
}

/** Flag name of an option: `name`, else the kebab-case key; lists lose a plural "s" */
export function argName(key: string, meta: OptionMetadata): string {
  let name = meta.name ?? kebabCase(key);
  const list = meta.type === OptionType.ARRAY || meta.type === OptionType.OBJECT;
  if (list && name.endsWith("s")) name = name.substring(0, name.length - 1);
  return name;
}

/** Each plugin's command-line arguments, in plugin then declaration order */
export function pluginArgs(plugins: PluginSignatures): [pluginName: string, args: CliArg[]][] {
  const result: [string, CliArg[]][] = [];
  for (const [pluginName, plugin] of Object.entries(plugins)) {
    const args: CliArg[] = [];
    for (const [key, meta] of plugin.prototype.opts ?? []) {
      // NONE options are API-only
      if (meta.type === OptionType.NONE || typeof key === "symbol") continue;
      args.push({ key, name: argName(key, meta), meta });
    }
    result.push([pluginName, args]);
  }
  return result;
}

/** The type shown in brackets: "boolean", "boolean/string", "array:NAME=PATH"... */
export function typeName({ type, typeFormat }: OptionMetadata): string {
  if (type === OptionType.BOOLEAN_STRING) return "boolean/string";
  if (type === OptionType.BOOLEAN_NUMBER) return "boolean/number";
  if (type === OptionType.OBJECT) return `array:${typeFormat ?? "KEY=VALUE"}`;
  return OptionType[type].toLowerCase();
}

/** Splits `text` at spaces into lines of at most `length` characters (where possible) */
function wrap(text: string, length: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= length) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  lines.push(line);
  return lines;
}

interface Row {
  alias?: string;
  /** Flag name without dashes, "(no-)" prefixed when negatable */
  label: string;
  description: string;
  type: string;
}

/**
 * Builds the --help text: a usage line, then one "<Name> Options:" section per
 * plugin with options (help/version first, in the first section). Each row is
 * ` -a, --name   description   [type]`, with types right-aligned to `width`
 * columns and descriptions wrapped to fit. The text is only as wide as the
 * longest row needs; without a width (not a terminal) nothing is wrapped
 * or padded.
 * Colours come from kleur, which disables them when not writing to a terminal.
 */
export function buildHelp(
  plugins: PluginSignatures,
  execName: string = process.env.MINIFLARE_EXEC_NAME ?? "miniflare",
  width: number | undefined = process.stdout.columns
): string {
  const sections = pluginArgs(plugins);
  const declared = sections.flatMap(([, args]) => args);
  const builtins = builtinArgs(declared);
  if (sections.length === 0) sections.push(["Plugin", []]);
  sections[0] = [sections[0][0], [...builtins, ...sections[0][1]]];

  let positional: string | undefined;
  const rendered: [title: string, rows: Row[]][] = [];
  for (const [pluginName, args] of sections) {
    const rows: Row[] = [];
    for (const { name, meta } of args) {
      if (meta.type === OptionType.STRING_POSITIONAL) {
        positional ??= name;
        continue;
      }
      rows.push({
        alias: meta.alias,
        label: meta.negatable ? `(no-)${name}` : name,
        description: meta.description ?? "",
        type: typeName(meta),
      });
    }
    if (rows.length > 0) rendered.push([sectionTitle(pluginName), rows]);
  }

  const all = rendered.flatMap(([, rows]) => rows);
  const max = (f: (row: Row) => number) => Math.max(0, ...all.map(f));
  const nameLength = max((row) => row.label.length);
  const indent = nameLength + 8; // " -a, " + "--" + name + " "
  const natural = indent + max((row) => row.description.length) + max((row) => row.type.length) + 3;
  // Not a terminal (or one that reports no width): rows aren't padded
  const wrapping = width !== undefined && width > 0;
  const columns = wrapping ? Math.min(natural, width) : natural;

  const usage = positional === undefined ? "[options]" : `[${positional}] [options]`;
  let out = `${bold("Usage:")} ${execName} ${usage}\n`;
  for (const [title, rows] of rendered) {
    out += `\n${bold(`${title}:`)}\n`;
    for (const { alias, label, description, type } of rows) {
      const lineLength = Math.max(1, columns - (indent + type.length + 3));
      const [first, ...more] = wrapping ? wrap(description, lineLength) : [description];
      out += grey(alias === undefined ? "     " : ` -${alias}, `);
      out += `--${label}`.padEnd(nameLength + 3);
      out += wrapping ? first.padEnd(lineLength) : first;
      out += grey(` [${type}]`);
      for (const line of more) out += `\n${"".padEnd(indent)}${line}`;
      out += "\n";
    }
  }
  return out.trimEnd();
}
