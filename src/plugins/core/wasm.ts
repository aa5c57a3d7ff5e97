/**
 * The WebAssembly namespace workers see. It is the host's (so modules from
 * wasm bindings and module rules, compiled on the host, pass `instanceof
 * WebAssembly.Module`), except that compiling from bytes is refused, as in
 * production. The host's functions would ignore the context's `wasm: false`
 * code generation setting, hence the wrappers.
 */
function disallowed(name: string): WebAssembly.CompileError {
  return new WebAssembly.CompileError(
    `${name}(): Wasm code generation disallowed by embedder`
  );
}

export function createWorkerWebAssembly(): typeof WebAssembly {
  const Module = new Proxy(WebAssembly.Module, {
    construct() {
      throw disallowed("WebAssembly.Module");
    },
  });
  const namespace: Record<string | symbol, unknown> = {};
  for (const key of Reflect.ownKeys(WebAssembly)) {
    namespace[key] = (WebAssembly as any)[key];
  }
  Object.assign(namespace, {
    Module,
    compile: async () => {
      throw disallowed("WebAssembly.compile");
    },
    compileStreaming: async () => {
      throw disallowed("WebAssembly.compileStreaming");
    },
    instantiateStreaming: async () => {
      throw disallowed("WebAssembly.instantiateStreaming");
    },
    // Instantiating an already-compiled module is allowed, from bytes isn't
    instantiate: (source: unknown, imports?: WebAssembly.Imports) => {
      if (source instanceof WebAssembly.Module) {
        return WebAssembly.instantiate(source, imports);
      }
      return Promise.reject(disallowed("WebAssembly.instantiate"));
    },
  });
  return namespace as unknown as typeof WebAssembly;
}
