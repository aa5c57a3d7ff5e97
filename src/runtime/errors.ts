import { MiniflareError } from "../shared/errors.js";

export type VMScriptRunnerErrorCode =
  | "ERR_MODULE_DISABLED" // Miniflare 2 needed --experimental-vm-modules; never thrown here, kept for fidelity
  | "ERR_MODULE_STRING_SCRIPT" // a script given as a string (no scriptPath) tried to import something
  | "ERR_MODULE_RULE" // an imported or required file matched no module rule
  | "ERR_MODULE_UNSUPPORTED" // a module rule has a type the runner can't load
  | "ERR_CJS_MODULE_UNSUPPORTED"; // a CommonJS module required an ES module

export class VMScriptRunnerError extends MiniflareError<VMScriptRunnerErrorCode> {}
