/**
 * One WebAssembly instance of lol-html (the `html-rewriter-wasm` package's
 * module), with bindings of its own.
 *
 * Why not the package's JavaScript? Its glue keeps everything at module
 * level: one instance, one table of JavaScript objects, one asyncify state,
 * for every rewriter in the process. Asyncify suspends a call whose handler
 * returned a promise by saving its wasm locals in the rewriter's buffer, but
 * nothing keeps two suspended calls' frames on the shadow stack (in linear
 * memory) apart: a second rewriter writing meanwhile builds its frames below
 * the first's, and whichever returns first moves the stack pointer back over
 * the other's. Whether that breaks anything depends on what lol-html keeps
 * there at the time. And an exception through one rewriter's frames (a
 * handler's error) leaves borrows and leaks in the instance all share.
 *
 * So each instance here serves one transform at a time (the pool in pool.ts
 * hands them out), all made from one module compiled once. The calling
 * convention is wasm-bindgen's (0.2.74, which built the package's wasm):
 * objects cross as indices into a per-instance table whose first 36 slots
 * are reserved (32 borrowed slots counted down, then undefined, null, true,
 * false); strings cross as (pointer, length) of UTF-8 in linear memory;
 * functions returning a `Result` throw through the wasm frames. The imports
 * keep the names wasm-bindgen gave them, hashes included.
 *
 * Two things differ from the package's glue, besides the state per instance:
 * - Tokens (Element, TextChunk, ...) given to handlers are Rust boxes the
 *   package's glue never frees: Miniflare 2's instance grows by about 40
 *   bytes per token, for good (300 KB per transform of a page giving
 *   handlers 8,000 tokens). Rust drops its handle on a token when its
 *   handler (and the promise the handler returned) is done; the token here
 *   then becomes stale, and its box is freed once the current call into
 *   wasm returns.
 * - Output: for each chunk lol-html writes, Rust asks for the memory, its
 *   buffer, a view of the chunk, a copy of the view, then calls the sink
 *   with the copy (js-sys's `Uint8Array::from(&[u8])`; the only use of these
 *   imports in the package's Rust). Those answer with fixed slots here, and
 *   the sink copies the bytes straight out of memory: no object per chunk.
 */
import {
  type ContentOptions,
  Fn,
  TOKEN_EXPORTS,
  Token,
  TokenKind,
  createToken,
  releaseToken,
  tokenKind,
} from "./tokens.js";

/** The exports of html_rewriter_bg.wasm this binding calls, besides TOKEN_EXPORTS */
interface LolHtmlExports {
  readonly memory: WebAssembly.Memory;
  __wbindgen_malloc(size: number): number;
  __wbindgen_realloc(ptr: number, oldSize: number, newSize: number): number;
  __wbindgen_free(ptr: number, size: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_exn_store(index: number): void;
  asyncify_get_state(): number;
  asyncify_start_unwind(dataPtr: number): void;
  asyncify_stop_unwind(): void;
  asyncify_start_rewind(dataPtr: number): void;
  asyncify_stop_rewind(): void;
  htmlrewriter_new(sink: number, options: number): number;
  htmlrewriter_on(rewriter: number, selectorPtr: number, selectorLen: number, handlers: number): void;
  htmlrewriter_onDocument(rewriter: number, handlers: number): void;
  htmlrewriter_write(rewriter: number, chunkPtr: number, chunkLen: number): void;
  htmlrewriter_end(rewriter: number): void;
  __wbg_htmlrewriter_free(rewriter: number): void;
}

const FREE_BASE = Fn.__wbg_element_free;

const REWRITER_EXPORTS: readonly string[] = [
  "memory",
  "__wbindgen_malloc",
  "__wbindgen_realloc",
  "__wbindgen_free",
  "__wbindgen_add_to_stack_pointer",
  "__wbindgen_exn_store",
  "asyncify_get_state",
  "asyncify_start_unwind",
  "asyncify_stop_unwind",
  "asyncify_start_rewind",
  "asyncify_stop_rewind",
  "htmlrewriter_new",
  "htmlrewriter_on",
  "htmlrewriter_onDocument",
  "htmlrewriter_write",
  "htmlrewriter_end",
  "__wbg_htmlrewriter_free",
  ...TOKEN_EXPORTS,
];

const IMPORT_MODULE = "__wbindgen_placeholder__";

// https://github.com/WebAssembly/binaryen/blob/version_92/src/passes/Asyncify.cpp
const ASYNCIFY_NONE = 0;
const ASYNCIFY_UNWINDING = 1;
const ASYNCIFY_REWINDING = 2;
/**
 * Each rewriter's asyncify buffer is 1024 bytes (a Rust `Vec` it owns); its
 * first 8 say where the saved stack may go
 */
const ASYNCIFY_BUFFER_SIZE = 1024;

// The object table. wasm-bindgen's reserved slots, then fixed slots of ours
// (indices are opaque to Rust; dropping these does nothing)
const BORROWED_SLOTS = 32;
const UNDEFINED_SLOT = 32;
const MEMORY_SLOT = 36;
const BUFFER_SLOT = 37;
const VIEW_SLOT = 38;
const COPY_SLOT = 39;
const FIXED_SLOTS = 40;
/** An `Option<bool>` that is `None`, as wasm-bindgen passes it */
const NONE_BOOL = 0xffffff;

const encoder = new TextEncoder();

/** Prototypes of promises of other realms (workers' contexts) seen so far */
const promisePrototypes = new WeakSet<object>();

function isPromise(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (value instanceof Promise) return true;
  // Promises from a worker's realm aren't instances of ours
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== null && promisePrototypes.has(prototype)) return true;
  if (Object.prototype.toString.call(value) !== "[object Promise]") return false;
  // Remember the realm's Promise.prototype (not Object.prototype, for an
  // object merely tagged "Promise")
  if (prototype !== null && Object.prototype.toString.call(prototype) === "[object Promise]") {
    promisePrototypes.add(prototype);
  }
  return true;
}

function optionalBool(value: unknown): number {
  return value === undefined || value === null ? NONE_BOOL : value ? 1 : 0;
}

/** How wasm-bindgen renders a value in panic messages */
function debugString(value: unknown): string {
  switch (typeof value) {
    case "string":
      return `"${value}"`;
    case "function":
      return value.name ? `Function(${value.name})` : "Function";
    case "symbol":
      return value.description === undefined ? "Symbol" : `Symbol(${value.description})`;
    case "object":
      if (value === null) return "null";
      if (Array.isArray(value)) return `[${value.map(debugString).join(", ")}]`;
      if (value instanceof Error) return `${value.name}: ${value.message}\n${value.stack}`;
      try {
        return `Object(${JSON.stringify(value)})`;
      } catch {
        return "Object";
      }
    default:
      return String(value);
  }
}

/** Ends a suspended call whose transform was given up (cancelled) */
class Abandoned extends Error {}

/** Where a transform's output goes */
export interface RewriterSink {
  /** Output bytes: `memory[start, end)`, valid only during the call (copy them) */
  write(memory: Uint8Array, start: number, end: number): void;
  /** Called before waiting for a handler's promise: the output so far can go */
  suspend(): void;
}

export interface RewriterHandlers {
  element: [selector: string, handlers: unknown][];
  document: unknown[];
  enableEsiTags: boolean;
}

/**
 * A lol-html instance running one rewriter at a time: begin(), write()s,
 * end(), then finish(); or abandon(), which retires the instance.
 */
export class LolHtmlInstance {
  readonly #exports: LolHtmlExports;
  readonly #fns: ((...args: number[]) => number)[];
  readonly #memory: WebAssembly.Memory;
  #bytes = new Uint8Array(0);
  #buffer = Buffer.alloc(0);
  #ints = new Int32Array(0);

  // The table of JavaScript objects wasm holds by index
  #heap: unknown[] = [];
  #heapNext = FIXED_SLOTS;
  #live = 0;
  #borrowed = BORROWED_SLOTS;
  // The output chunk Rust is making (see the top of this file)
  #viewStart = 0;
  #viewEnd = 0;
  #copyStart = 0;
  #copyEnd = 0;

  /** Set once an exception crossed wasm frames or a call was given up */
  #broken = false;
  #rewriter = 0;
  #sink: RewriterSink | undefined;
  /** The function the rewriter calls with output */
  readonly #output = () => {};
  /** The promise a handler returned, while its call is unwound */
  #pending: unknown = undefined;
  #pendingStack = 0;
  #inCall = false;
  #abandoned = false;
  /** Tokens Rust let go of in the current call: their boxes, to free after it */
  #released: Token[] = [];

  constructor(module: WebAssembly.Module) {
    const instance = new WebAssembly.Instance(module, { [IMPORT_MODULE]: this.#imports() });
    const exports = instance.exports as Record<string, unknown>;
    this.#exports = exports as unknown as LolHtmlExports;
    this.#fns = TOKEN_EXPORTS.map((name) => exports[name] as (...args: number[]) => number);
    this.#memory = this.#exports.memory;
    this.#resetHeap();
  }

  /** Whether the instance can serve another transform */
  get reusable(): boolean {
    return !this.#broken && this.#rewriter === 0;
  }

  /** Bytes of linear memory (it only grows) */
  get memoryBytes(): number {
    return this.#memory.buffer.byteLength;
  }

  // -------------------------------------------------------------------------
  // Memory, strings and the object table

  /** The views of memory, made again after it grew (which detaches the old) */
  #view(): Uint8Array {
    if (this.#bytes.byteLength === 0) {
      const buffer = this.#memory.buffer;
      this.#bytes = new Uint8Array(buffer);
      this.#buffer = Buffer.from(buffer);
      this.#ints = new Int32Array(buffer);
    }
    return this.#bytes;
  }

  #int32(): Int32Array {
    this.#view();
    return this.#ints;
  }

  #decode(ptr: number, len: number): string {
    const bytes = this.#view();
    if (len <= 32) {
      // Most strings (names, attribute values, bits of text) are short and
      // ASCII: a loop beats a call into the decoder
      let value = "";
      for (let i = ptr; i < ptr + len; i++) {
        const code = bytes[i];
        if (code > 0x7f) return this.#buffer.toString("utf8", ptr, ptr + len);
        value += String.fromCharCode(code);
      }
      return value;
    }
    return this.#buffer.toString("utf8", ptr, ptr + len);
  }

  /** Copies `value` into memory wasm takes ownership of: pointer and byte length */
  #passString(value: string): [ptr: number, len: number] {
    const e = this.#exports;
    let len = value.length;
    let ptr = e.__wbindgen_malloc(len);
    const bytes = this.#view();
    let i = 0;
    for (; i < len; i++) {
      const code = value.charCodeAt(i);
      if (code > 0x7f) break;
      bytes[ptr + i] = code;
    }
    if (i < len) {
      // Not ASCII: the rest, encoded, in room for 3 bytes a code unit
      const rest = value.substring(i);
      const capacity = i + rest.length * 3;
      ptr = e.__wbindgen_realloc(ptr, len, capacity);
      const { written } = encoder.encodeInto(rest, this.#view().subarray(ptr + i, ptr + capacity));
      len = i + written;
    }
    return [ptr, len];
  }

  #resetHeap(): void {
    const heap: unknown[] = new Array(BORROWED_SLOTS).fill(undefined);
    heap.push(undefined, null, true, false);
    heap.push(this.#memory, undefined, undefined, undefined); // (see #imports)
    this.#heap = heap;
    this.#heapNext = heap.length;
    this.#live = 0;
    this.#borrowed = BORROWED_SLOTS;
  }

  #add(value: unknown): number {
    const heap = this.#heap;
    if (this.#heapNext === heap.length) heap.push(heap.length + 1);
    const index = this.#heapNext;
    this.#heapNext = heap[index] as number;
    heap[index] = value;
    this.#live++;
    return index;
  }

  #addOptional(value: unknown): number {
    return value === undefined || value === null ? 0 : this.#add(value);
  }

  #get(index: number): unknown {
    if (index === COPY_SLOT || index === VIEW_SLOT) {
      // Not expected (only the sink gets these): make them real
      return index === COPY_SLOT
        ? this.#view().slice(this.#copyStart, this.#copyEnd)
        : this.#view().subarray(this.#viewStart, this.#viewEnd);
    }
    if (index === BUFFER_SLOT) return this.#memory.buffer;
    return this.#heap[index];
  }

  #drop(index: number): void {
    if (index < FIXED_SLOTS) return;
    const heap = this.#heap;
    const value = heap[index];
    // Rust's handle on a token goes when its handler is done
    if (value instanceof Token) this.#released.push(value);
    heap[index] = this.#heapNext;
    this.#heapNext = index;
    this.#live--;
  }

  #take(index: number): unknown {
    const value = this.#get(index);
    this.#drop(index);
    return value;
  }

  #writeString(retptr: number, value: string): void {
    const [ptr, len] = this.#passString(value);
    const ints = this.#int32();
    ints[(retptr >> 2) + 1] = len;
    ints[retptr >> 2] = ptr;
  }

  #handlerMethod(handlers: number, name: string): number {
    return this.#addOptional((this.#get(handlers) as Record<string, unknown>)[name]);
  }

  #call(fn: number, self: number, arg: number): number | undefined {
    try {
      const callee = this.#get(fn) as { call?: unknown };
      if (callee === this.#output) {
        this.#sink?.write(this.#view(), this.#copyStart, this.#copyEnd);
        return UNDEFINED_SLOT;
      }
      if (typeof callee?.call !== "function") {
        // (as Miniflare 2's glue reported a handler that isn't a function)
        throw new TypeError("getObject(...).call is not a function");
      }
      const result: unknown = (callee as Function).call(this.#get(self), this.#get(arg));
      return result === undefined ? UNDEFINED_SLOT : this.#add(result);
    } catch (error) {
      this.#exports.__wbindgen_exn_store(this.#add(error));
    }
  }

  #imports(): WebAssembly.ModuleImports {
    return {
      __wbindgen_object_drop_ref: (i: number) => this.#drop(i),
      // (A borrowed slot, below 32, is only lent for the call: a clone gets its own)
      __wbindgen_object_clone_ref: (i: number) =>
        i >= BORROWED_SLOTS && i < FIXED_SLOTS ? i : this.#add(this.#get(i)),
      __wbindgen_string_new: (ptr: number, len: number) => this.#add(this.#decode(ptr, len)),
      __wbindgen_memory: () => MEMORY_SLOT,
      __wbindgen_debug_string: (retptr: number, i: number) => this.#writeString(retptr, debugString(this.#get(i))),
      __wbindgen_throw: (ptr: number, len: number) => {
        throw new Error(this.#decode(ptr, len));
      },
      __wbindgen_rethrow: (i: number) => {
        throw this.#take(i);
      },
      // Options objects
      __wbg_html_cd9a0f328493678b: (i: number) => optionalBool((this.#get(i) as ContentOptions).html),
      __wbg_enableEsiTags_de6b91cc61a25874: (i: number) =>
        optionalBool((this.#get(i) as { enableEsiTags?: unknown }).enableEsiTags),
      // Handler objects' methods, looked up as the rewriter is built
      __wbg_element_c38470ed972aea27: (i: number) => this.#handlerMethod(i, "element"),
      __wbg_comments_ba86bc03331d9378: (i: number) => this.#handlerMethod(i, "comments"),
      __wbg_text_7800bf26cb443911: (i: number) => this.#handlerMethod(i, "text"),
      __wbg_doctype_ac58c0964a59b61b: (i: number) => this.#handlerMethod(i, "doctype"),
      __wbg_comments_94d876f6c0502e82: (i: number) => this.#handlerMethod(i, "comments"),
      __wbg_text_4606a16c30e4ae91: (i: number) => this.#handlerMethod(i, "text"),
      __wbg_end_34efb9402eac8a4e: (i: number) => this.#handlerMethod(i, "end"),
      // Tokens
      __wbg_element_new: (ptr: number) => this.#add(createToken(TokenKind.ELEMENT, this, ptr)),
      __wbg_comment_new: (ptr: number) => this.#add(createToken(TokenKind.COMMENT, this, ptr)),
      __wbg_textchunk_new: (ptr: number) => this.#add(createToken(TokenKind.TEXT_CHUNK, this, ptr)),
      __wbg_doctype_new: (ptr: number) => this.#add(createToken(TokenKind.DOCTYPE, this, ptr)),
      __wbg_endtag_new: (ptr: number) => this.#add(createToken(TokenKind.END_TAG, this, ptr)),
      __wbg_documentend_new: (ptr: number) => this.#add(createToken(TokenKind.DOCUMENT_END, this, ptr)),
      // Calls of handlers and of the output sink; promises handlers return
      __wbg_call_6c4ea719458624eb: (fn: number, self: number, arg: number) => this.#call(fn, self, arg),
      __wbg_instanceof_Promise_c6535fc791fcc4d2: (i: number) => (isPromise(this.#get(i)) ? 1 : 0),
      __wbg_awaitPromise_39a1101fd8518869: (stackPtr: number, i: number) =>
        this.#awaitPromise(stackPtr, this.#get(i)),
      // Errors and arrays (attributes)
      __wbg_new_917809a3e20a4b00: (ptr: number, len: number) => this.#add(new TypeError(this.#decode(ptr, len))),
      __wbg_String_60c4ba333b5ca1c6: (retptr: number, i: number) => this.#writeString(retptr, String(this.#get(i))),
      __wbg_new_4fee7e2900033464: () => this.#add([]),
      __wbg_push_ba9b5e3c25cff8f9: (array: number, value: number) =>
        (this.#get(array) as unknown[]).push(this.#get(value)),
      // An output chunk: memory.buffer, a view of it, a copy of the view
      __wbg_buffer_89a8560ab6a3d9c6: (i: number) =>
        i === MEMORY_SLOT ? BUFFER_SLOT : this.#add((this.#get(i) as { buffer: unknown }).buffer),
      __wbg_newwithbyteoffsetandlength_e45d8b33c02dc3b5: (buffer: number, offset: number, length: number) => {
        if (buffer !== BUFFER_SLOT) {
          return this.#add(new Uint8Array(this.#get(buffer) as ArrayBuffer, offset >>> 0, length >>> 0));
        }
        this.#viewStart = offset >>> 0;
        this.#viewEnd = this.#viewStart + (length >>> 0);
        return VIEW_SLOT;
      },
      __wbg_new_bd2e1d010adb8a1a: (i: number) => {
        if (i !== VIEW_SLOT) return this.#add(new Uint8Array(this.#get(i) as Uint8Array));
        this.#copyStart = this.#viewStart;
        this.#copyEnd = this.#viewEnd;
        return COPY_SLOT;
      },
    };
  }

  // -------------------------------------------------------------------------
  // Asyncify: a handler's promise suspends the call into wasm

  /**
   * Called by wasm when a handler returned a promise: first with asyncify
   * off (unwind the stack into the rewriter's buffer), then again as the
   * stack is rewound (stop rewinding: the call goes on from there)
   */
  #awaitPromise(stackPtr: number, promise: unknown): void {
    const e = this.#exports;
    if (e.asyncify_get_state() === ASYNCIFY_REWINDING) {
      e.asyncify_stop_rewind();
      return;
    }
    const ints = this.#int32();
    ints[stackPtr >> 2] = stackPtr + 8;
    ints[(stackPtr >> 2) + 1] = stackPtr + ASYNCIFY_BUFFER_SIZE;
    e.asyncify_start_unwind(stackPtr);
    this.#pending = promise;
    this.#pendingStack = stackPtr;
  }

  /**
   * Runs a rewriter call, waiting for each promise a handler returns, then
   * re-entering wasm where it left off. An exception out of wasm breaks the
   * instance: Rust state may be half-updated, borrows left held.
   */
  async #drive(call: () => void): Promise<void> {
    const e = this.#exports;
    if (this.#inCall) throw new Error("This lol-html instance is already running a call.");
    this.#inCall = true;
    try {
      call();
      while (e.asyncify_get_state() === ASYNCIFY_UNWINDING) {
        e.asyncify_stop_unwind();
        const promise = this.#pending;
        this.#pending = undefined;
        this.#freeReleased();
        this.#sink?.suspend();
        await promise;
        if (this.#abandoned) throw new Abandoned();
        e.asyncify_start_rewind(this.#pendingStack);
        call();
      }
      if (e.asyncify_get_state() !== ASYNCIFY_NONE) throw new Error("lol-html was left mid-call.");
    } catch (error) {
      this.#broken = true;
      throw error;
    } finally {
      this.#inCall = false;
      this.#freeReleased();
    }
  }

  /** Frees the boxes of tokens whose handlers are done */
  #freeReleased(): void {
    const released = this.#released;
    if (released.length === 0) return;
    this.#released = [];
    const fns = this.#fns;
    for (const token of released) {
      const ptr = releaseToken(token);
      if (ptr === 0 || this.#broken) continue;
      try {
        fns[FREE_BASE + tokenKind(token)](ptr);
      } catch {
        // A method that threw left the token borrowed
        this.#broken = true;
      }
    }
  }

  // -------------------------------------------------------------------------
  // A transform

  /** Builds the rewriter for one transform (throws what the selectors do) */
  begin(sink: RewriterSink, handlers: RewriterHandlers): void {
    if (this.#rewriter !== 0 || this.#broken) throw new Error("This lol-html instance is in use.");
    const e = this.#exports;
    this.#sink = sink;
    try {
      const options = this.#add({ enableEsiTags: handlers.enableEsiTags });
      this.#heap[--this.#borrowed] = this.#output;
      try {
        this.#rewriter = e.htmlrewriter_new(this.#borrowed, options);
      } finally {
        this.#heap[this.#borrowed++] = undefined;
      }
      for (const [selector, elementHandlers] of handlers.element) {
        const [ptr, len] = this.#passString(String(selector));
        e.htmlrewriter_on(this.#rewriter, ptr, len, this.#add(elementHandlers));
      }
      for (const documentHandlers of handlers.document) {
        e.htmlrewriter_onDocument(this.#rewriter, this.#add(documentHandlers));
      }
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** Rewrites a chunk of input (copied into wasm: free to reuse after) */
  write(chunk: Uint8Array): Promise<void> {
    const e = this.#exports;
    const rewriter = this.#rewriter;
    // Rust takes the copy, and frees it when the call completes
    const len = chunk.byteLength;
    const ptr = e.__wbindgen_malloc(len);
    this.#view().set(chunk, ptr);
    return this.#drive(() => e.htmlrewriter_write(rewriter, ptr, len));
  }

  /** Ends the document: the rest of the output, and `end` handlers */
  end(): Promise<void> {
    const e = this.#exports;
    const rewriter = this.#rewriter;
    return this.#drive(() => e.htmlrewriter_end(rewriter));
  }

  /**
   * Frees the rewriter, and with it the handlers wasm held. While a call is
   * running (suspended on a handler's promise), or if the instance broke,
   * gives the instance up instead (abandon()).
   */
  finish(): void {
    if (this.#inCall) return this.abandon();
    const rewriter = this.#rewriter;
    this.#rewriter = 0;
    this.#sink = undefined;
    if (rewriter !== 0 && !this.#broken) {
      try {
        this.#exports.__wbg_htmlrewriter_free(rewriter);
      } catch {
        this.#broken = true;
      }
    }
    this.#freeReleased();
    // Freeing the rewriter let go of every object: else something leaked
    if (this.#live !== 0) this.#broken = true;
    if (this.#broken) this.#releaseTokens();
    this.#resetHeap();
  }

  /**
   * Gives up on the current transform, even mid-call: the instance won't be
   * used again, a suspended call stops where it is (its #drive() throws
   * Abandoned), and tokens handlers still hold become stale.
   */
  abandon(): void {
    this.#abandoned = true;
    this.#broken = true;
    this.#sink = undefined;
    this.#rewriter = 0;
    this.#releaseTokens();
    // Let go of the handlers (and what they reference) at once
    this.#resetHeap();
  }

  #releaseTokens(): void {
    for (const value of this.#heap) if (value instanceof Token) releaseToken(value);
    for (const token of this.#released) releaseToken(token);
    this.#released = [];
  }

  // -------------------------------------------------------------------------
  // What tokens call, after checking they are still valid. An exception out
  // of wasm (a method's Err, thrown through its frames) breaks the instance.

  /** `fn(ptr)` */
  _call(fn: number, ptr: number): number {
    try {
      return this.#fns[fn](ptr);
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** `fn(ptr, string)` */
  _callString(fn: number, ptr: number, value: string): number {
    try {
      const [sPtr, sLen] = this.#passString(value);
      return this.#fns[fn](ptr, sPtr, sLen);
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** `fn(ptr, string, string)` */
  _callStrings(fn: number, ptr: number, a: string, b: string): number {
    try {
      const [aPtr, aLen] = this.#passString(a);
      const [bPtr, bLen] = this.#passString(b);
      return this.#fns[fn](ptr, aPtr, aLen, bPtr, bLen);
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** `fn(ptr, content, options)`: the content mutations */
  _callContent(fn: number, ptr: number, content: string, options: unknown): void {
    try {
      const [sPtr, sLen] = this.#passString(content);
      this.#fns[fn](ptr, sPtr, sLen, this.#addOptional(options));
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** `fn(ptr, function)` */
  _callFunction(fn: number, ptr: number, value: Function): void {
    try {
      this.#fns[fn](ptr, this.#add(value));
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** `fn(ptr[, string])` returning an object */
  _callObject(fn: number, ptr: number, value?: string): unknown {
    return this.#take(value === undefined ? this._call(fn, ptr) : this._callString(fn, ptr, value));
  }

  /** `fn(retptr, ptr)` returning a string Rust allocated */
  _callReturningString(fn: number, ptr: number): string {
    const e = this.#exports;
    const retptr = e.__wbindgen_add_to_stack_pointer(-16);
    try {
      this.#fns[fn](retptr, ptr);
      const ints = this.#int32();
      const sPtr = ints[retptr >> 2];
      const sLen = ints[(retptr >> 2) + 1];
      const value = this.#decode(sPtr, sLen);
      e.__wbindgen_free(sPtr, sLen);
      return value;
    } catch (error) {
      this.#broken = true;
      throw error;
    } finally {
      e.__wbindgen_add_to_stack_pointer(16);
    }
  }
}

/**
 * Throws unless `module` has the exports this binding calls. (An import it
 * doesn't provide, say one a newer html-rewriter-wasm renamed, fails the
 * first instantiation with a LinkError naming it.)
 */
export function checkModule(module: WebAssembly.Module, version: string): void {
  const exported = new Set(WebAssembly.Module.exports(module).map(({ name }) => name));
  const missing = REWRITER_EXPORTS.filter((name) => !exported.has(name));
  if (missing.length > 0) {
    throw new Error(
      `html-rewriter-wasm ${version} isn't the version HTMLRewriter was written for (0.4.1): ` +
        `its wasm lacks ${missing.join(", ")}`
    );
  }
}
