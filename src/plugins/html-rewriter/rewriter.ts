/**
 * `HTMLRewriter`: streaming HTML rewriting with CSS-selector handlers, on
 * lol-html compiled to wasm (html-rewriter-wasm).
 *
 * https://developers.cloudflare.com/workers/runtime-apis/html-rewriter/
 *
 * `transform(response)` returns at once a response whose body is rewritten
 * as it is read: nothing runs (and no wasm is touched) until then. Each read
 * feeds input to the transform's lol-html instance until some output comes
 * out, so output streams as input arrives. Handlers run in the async context
 * of the `transform()` call, so a handler's `fetch()` counts against the
 * request that made the transform, wherever the body is read from.
 *
 * Each transform running has a lol-html instance of its own (pool.ts, and
 * wasm.ts for why), however many run at once and whatever their handlers
 * await; its rewriter is freed however the transform ends: body read to the
 * end, a handler or the input failing, or the body cancelled.
 */
import { AsyncResource } from "node:async_hooks";
import {
  Response,
  _takeBodyText,
  withEnumerableGetters,
  withStringFormDataFiles,
} from "../../standards/http.js";
import { lolHtmlPool } from "./pool.js";
import type { Comment, Doctype, DocumentEnd, Element, TextChunk } from "./tokens.js";
import type { LolHtmlInstance, RewriterHandlers, RewriterSink } from "./wasm.js";

export interface ElementHandlers {
  element?(element: Element): void | Promise<void>;
  comments?(comment: Comment): void | Promise<void>;
  text?(text: TextChunk): void | Promise<void>;
}

export interface DocumentHandlers {
  doctype?(doctype: Doctype): void | Promise<void>;
  comments?(comment: Comment): void | Promise<void>;
  text?(text: TextChunk): void | Promise<void>;
  end?(end: DocumentEnd): void | Promise<void>;
}

/** How a worker's compatibility settings shape its rewriters */
export interface HTMLRewriterConfig {
  /** `html_rewriter_treats_esi_include_as_void_tag`: `<esi:include>` is a void tag */
  enableEsiTags: boolean;
  /** `formdata_parser_supports_files` off: transformed responses' formData() gives files as strings */
  stringFormDataFiles: boolean;
  /** `workers_api_getters_setters_on_prototype` off: transformed responses get own getters */
  enumerableGetters: boolean;
}

const DEFAULT_CONFIG: HTMLRewriterConfig = {
  enableEsiTags: false,
  stringFormDataFiles: false,
  enumerableGetters: false,
};

/**
 * Input is written to lol-html at most this much at a time: what it copies
 * into wasm memory (which never shrinks) stays small, and output comes out
 * of a long string body in pieces
 */
const MAX_WRITE_BYTES = 64 * 1024;
/** The output buffer's initial size (it grows to the most a write gave) */
const MIN_OUTPUT_BUFFER = 16 * 1024;

let configure: (rewriter: HTMLRewriter, config: Partial<HTMLRewriterConfig>) => void;

export class HTMLRewriter {
  readonly #elementHandlers: [selector: string, handlers: ElementHandlers][] = [];
  readonly #documentHandlers: DocumentHandlers[] = [];
  #config = DEFAULT_CONFIG;

  static {
    configure = (rewriter, config) => {
      rewriter.#config = { ...rewriter.#config, ...config };
    };
  }

  /**
   * Runs `handlers` on what `selector` matches. The selector is parsed when
   * a transformed body is first read: an unsupported one fails the read.
   */
  on(selector: string, handlers: ElementHandlers): this {
    this.#elementHandlers.push([selector, handlers]);
    return this;
  }

  onDocument(handlers: DocumentHandlers): this {
    this.#documentHandlers.push(handlers);
    return this;
  }

  /**
   * A response like `response` (status, headers but `Content-Length`) whose
   * body is `response`'s, rewritten. A null body stays null, and runs no
   * handler. Can be called any number of times.
   */
  transform(response: Response | globalThis.Response): Response {
    const config = this.#config;
    // A string body is taken as it is, without a stream
    let text = response instanceof Response ? _takeBodyText(response) : undefined;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let readerError: unknown;
    if (text === undefined) {
      let body = response.body;
      if (body === null) return withConfig(new Response(null, response), config);
      if (body === undefined) {
        // (Miniflare 2's error for a value that isn't a response)
        throw new TypeError("Cannot read properties of undefined (reading 'pipeTo')");
      }
      // Our bodies check their chunks are bytes (string chunks are an error)
      if (!(response instanceof Response)) body = new Response(body, response).body!;
      try {
        // (a string body already read has an empty stream: refuse it too)
        if (response.bodyUsed) throw new TypeError("Invalid state: ReadableStream is locked");
        reader = body.getReader();
      } catch (error) {
        // A body already read or locked: reading the result says so
        readerError = error;
      }
    }

    const transformation = new Transformation(
      {
        element: this.#elementHandlers.slice(),
        document: this.#documentHandlers.slice(),
        enableEsiTags: config.enableEsiTags,
      },
      text,
      reader,
      readerError
    );
    text = undefined;
    // Handlers run in this call's async context (its request)
    const scope = new AsyncResource("HTMLRewriter");
    const stream = new ReadableStream({
      type: "bytes",
      pull: (controller) => scope.runInAsyncScope(transformation.pull, transformation, controller),
      cancel: (reason) => scope.runInAsyncScope(transformation.cancel, transformation, reason),
    });
    const result = new Response(stream, response);
    // The rewritten body's length isn't known
    result.headers.delete("Content-Length");
    return withConfig(result, config);
  }
}

function withConfig(response: Response, config: HTMLRewriterConfig): Response {
  if (config.stringFormDataFiles) withStringFormDataFiles(response);
  if (config.enumerableGetters) withEnumerableGetters(response);
  return response;
}

/**
 * Makes `rewriter` treat `<esi:include>` as a void tag (Miniflare 2's
 * export, for what `html_rewriter_treats_esi_include_as_void_tag` does)
 */
export function withEnableEsiTags(rewriter: HTMLRewriter): HTMLRewriter {
  configure(rewriter, { enableEsiTags: true });
  return rewriter;
}

/**
 * `HTMLRewriter` as a worker with `config` sees it: each rewriter it makes
 * is configured. The class itself (name, prototype, `instanceof`) is
 * unchanged, as Miniflare 2 did it.
 */
export function configuredHTMLRewriter(config: HTMLRewriterConfig): typeof HTMLRewriter {
  if (!config.enableEsiTags && !config.stringFormDataFiles && !config.enumerableGetters) return HTMLRewriter;
  const proxy: typeof HTMLRewriter = new Proxy(HTMLRewriter, {
    construct(target, args, newTarget) {
      // The real class as new.target keeps instances on V8's fast path
      const rewriter = Reflect.construct(target, args, newTarget === proxy ? target : newTarget) as HTMLRewriter;
      configure(rewriter, config);
      return rewriter;
    },
  });
  return proxy;
}

/** One transform: its input, its lol-html instance while it runs, its output */
class Transformation {
  readonly #handlers: RewriterHandlers;
  #text: string | undefined;
  /** The input was a string (now in #chunk, as bytes) */
  #fromText = false;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #readerError: unknown;
  /** What's left of the input chunk being written */
  #chunk: Uint8Array | undefined;

  #instance: LolHtmlInstance | undefined;
  #controller: ReadableByteStreamController | undefined;
  /** Output not enqueued yet: #output[0, #outputLength) */
  #output = new Uint8Array(0);
  #outputLength = 0;
  #flushScheduled = false;
  /** Closed, errored or cancelled */
  #done = false;

  readonly #sink: RewriterSink = {
    write: (memory, start, end) => {
      const length = end - start;
      let output = this.#output;
      const at = this.#outputLength;
      if (at + length > output.length) {
        const grown = new Uint8Array(Math.max(MIN_OUTPUT_BUFFER, 2 * output.length, at + length));
        grown.set(output.subarray(0, at));
        output = this.#output = grown;
      }
      if (length < 64) {
        // (cheaper than a subarray for the many small chunks lol-html writes)
        for (let i = 0; i < length; i++) output[at + i] = memory[start + i];
      } else {
        output.set(memory.subarray(start, end), at);
      }
      this.#outputLength = at + length;
    },
    // A handler's promise is about to be waited for. The output so far goes
    // out if the wait outlasts this turn of the event loop: handlers that
    // await little (a microtask) don't cost a chunk each
    suspend: () => {
      if (this.#flushScheduled || this.#outputLength === 0) return;
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    },
  };

  constructor(
    handlers: RewriterHandlers,
    text: string | undefined,
    reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
    readerError: unknown
  ) {
    this.#handlers = handlers;
    this.#text = text;
    this.#reader = reader;
    this.#readerError = readerError;
  }

  /** Writes input until some output comes out, or the end */
  async pull(controller: ReadableByteStreamController): Promise<void> {
    this.#controller = controller;
    try {
      let instance = this.#instance;
      if (instance === undefined) {
        if (this.#readerError !== undefined) throw this.#readerError;
        const acquired = lolHtmlPool.acquire();
        instance = acquired instanceof Promise ? await acquired : acquired;
        this.#instance = instance;
        if (this.#done) return this.#releaseInstance();
        instance.begin(this.#sink, this.#handlers);
      }
      for (;;) {
        const chunk = this.#nextChunk() ?? (await this.#readChunk());
        if (this.#done) return;
        if (chunk === undefined) {
          await instance.end();
          if (this.#done) return;
          this.#flush();
          this.#done = true;
          this.#releaseInstance();
          controller.close();
          return;
        }
        await instance.write(chunk);
        if (this.#done) return;
        if (this.#flush()) return;
      }
    } catch (error) {
      // Cancelled meanwhile: the error (Abandoned, a closed reader's) is moot
      if (this.#done) return;
      this.#done = true;
      this.#releaseInstance();
      this.#reader?.cancel(error).catch(() => {});
      throw error;
    }
  }

  async cancel(reason: unknown): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#releaseInstance();
    await this.#reader?.cancel(reason);
  }

  /** The next piece of the input already here: of the string, or the chunk being written */
  #nextChunk(): Uint8Array | undefined {
    if (this.#text !== undefined) {
      this.#chunk = Buffer.from(this.#text, "utf8");
      this.#text = undefined;
      this.#fromText = true;
    }
    const chunk = this.#chunk;
    if (chunk === undefined) return undefined;
    if (chunk.byteLength <= MAX_WRITE_BYTES) {
      this.#chunk = undefined;
      return chunk;
    }
    this.#chunk = chunk.subarray(MAX_WRITE_BYTES);
    return chunk.subarray(0, MAX_WRITE_BYTES);
  }

  /** Reads a chunk of the input stream: undefined at its end */
  async #readChunk(): Promise<Uint8Array | undefined> {
    if (this.#fromText || this.#reader === undefined) return undefined;
    const { done, value } = await this.#reader.read();
    if (done) return undefined;
    this.#chunk = value;
    return this.#nextChunk();
  }

  /** Enqueues the output so far as one chunk: whether there was some */
  #flush(): boolean {
    const length = this.#outputLength;
    if (length === 0 || this.#done) return false;
    this.#outputLength = 0;
    // A copy: enqueuing hands the chunk's buffer over to the reader
    this.#controller!.enqueue(this.#output.slice(0, length));
    return true;
  }

  /**
   * The transform is over: frees the rewriter (giving up a call still
   * running), returns the instance, and lets go of the output buffer
   */
  #releaseInstance(): void {
    this.#output = new Uint8Array(0);
    this.#chunk = undefined;
    const instance = this.#instance;
    if (instance === undefined) return;
    this.#instance = undefined;
    instance.finish();
    lolHtmlPool.release(instance);
  }
}
