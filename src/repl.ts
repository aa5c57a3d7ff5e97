import os from "node:os";
import path from "node:path";
import repl from "node:repl";
import vm from "node:vm";
import type { MiniflareCore } from "./core/core.js";
import { defineGlobalGuards, defineHasInstances } from "./runtime/index.js";

const DEFAULT_HISTORY_SIZE = 1000;

/**
 * Starts a Node REPL evaluating in the worker's global scope, with its
 * bindings as `env`. Environment variables: MINIFLARE_REPL_HISTORY (history
 * file, default ~/.mf_repl_history, empty to disable),
 * MINIFLARE_REPL_HISTORY_SIZE (default 1000) and MINIFLARE_REPL_MODE
 * ("sloppy" or "strict").
 */
export async function startREPL(mf: MiniflareCore): Promise<repl.REPLServer> {
  const historyPath =
    process.env.MINIFLARE_REPL_HISTORY ?? path.join(os.homedir(), ".mf_repl_history");
  let historySize = Number(process.env.MINIFLARE_REPL_HISTORY_SIZE);
  if (Number.isNaN(historySize) || historySize <= 0) historySize = DEFAULT_HISTORY_SIZE;
  const replMode =
    process.env.MINIFLARE_REPL_MODE?.toLowerCase().trim() === "strict"
      ? repl.REPL_MODE_STRICT
      : repl.REPL_MODE_SLOPPY;

  const globalScope = await mf.getGlobalScope();
  const bindings = await mf.getBindings();
  // If a script ran, the global scope is already a context and this returns
  // it; without a script it becomes one here
  const context = vm.createContext(globalScope, {
    codeGeneration: { strings: false, wasm: false },
  });
  defineHasInstances(context);
  defineGlobalGuards(context, globalScope);
  context.env = bindings;
  // (historySize is a readline option the REPL passes on; @types/node
  // doesn't list it)
  const server = repl.start({ replMode, historySize } as repl.ReplOptions);
  (server as { context: vm.Context }).context = context;
  if (historyPath !== "") {
    server.setupHistory(historyPath, (error) => {
      if (error) mf.log.error(error);
    });
  }
  return server;
}
