/**
 * What HTMLRewriter handlers receive: `Element`, `EndTag`, `Comment`,
 * `TextChunk`, `Doctype` and `DocumentEnd`, each a handle on a token inside
 * a lol-html instance (wasm.ts).
 *
 * https://developers.cloudflare.com/workers/runtime-apis/html-rewriter/
 *
 * A token is only valid while its handler runs (until the promise it
 * returned settles): after that every property and method throws, with
 * production's TypeError. Miniflare 2 threw the same; here the check is made
 * before calling into wasm, and also covers tokens of a transform that was
 * cancelled. Mutators return the token, so calls chain; string arguments are
 * converted with `String()`.
 */
import type { LolHtmlInstance } from "./wasm.js";

/** `{ html: true }` inserts content as HTML; otherwise it's escaped text */
export interface ContentOptions {
  html?: boolean;
}

/** The wasm exports tokens call, by their index (`Fn.element_before`, ...) */
export const TOKEN_EXPORTS = [
  "element_before",
  "element_after",
  "element_replace",
  "element_remove",
  "element_removed",
  "element_tag_name",
  "element_set_tag_name",
  "element_namespace_uri",
  "element_attributes",
  "element_getAttribute",
  "element_hasAttribute",
  "element_setAttribute",
  "element_removeAttribute",
  "element_prepend",
  "element_append",
  "element_setInnerContent",
  "element_removeAndKeepContent",
  "element_onEndTag",
  "comment_before",
  "comment_after",
  "comment_replace",
  "comment_remove",
  "comment_removed",
  "comment_text",
  "comment_set_text",
  "doctype_name",
  "doctype_public_id",
  "doctype_system_id",
  "textchunk_before",
  "textchunk_after",
  "textchunk_replace",
  "textchunk_remove",
  "textchunk_removed",
  "textchunk_text",
  "textchunk_last_in_text_node",
  "endtag_name",
  "endtag_set_name",
  "endtag_before",
  "endtag_after",
  "endtag_remove",
  "documentend_append",
  // Frees each kind of token's box, in TokenKind's order
  "__wbg_element_free",
  "__wbg_comment_free",
  "__wbg_textchunk_free",
  "__wbg_doctype_free",
  "__wbg_endtag_free",
  "__wbg_documentend_free",
] as const;

export type TokenExport = (typeof TOKEN_EXPORTS)[number];

export const Fn = Object.fromEntries(TOKEN_EXPORTS.map((name, index) => [name, index])) as Record<
  TokenExport,
  number
>;

export enum TokenKind {
  ELEMENT,
  COMMENT,
  TEXT_CHUNK,
  DOCTYPE,
  END_TAG,
  DOCUMENT_END,
}

const STALE_TOKEN =
  "This content token is no longer valid. Content tokens are only valid " +
  "during the execution of the relevant content handler.";

// Only createToken() makes tokens: `new` from a handler throws, as in production
const kConstruct = Symbol("kConstruct");

// Internal access to tokens' private state, for this file and wasm.ts only
let use: (token: Token) => [wasm: LolHtmlInstance, ptr: number];
let release: (token: Token) => number;
let kindOf: (token: Token) => TokenKind;

/** The base of every token class (state only, no public members) */
export abstract class Token {
  #wasm: LolHtmlInstance | undefined;
  readonly #kind: TokenKind;
  #ptr: number;

  constructor(key: symbol, wasm: LolHtmlInstance, ptr: number, kind: TokenKind) {
    if (key !== kConstruct) throw new TypeError("Illegal constructor");
    this.#wasm = wasm;
    this.#ptr = ptr;
    this.#kind = kind;
  }

  static {
    use = (token) => {
      if (token.#ptr === 0) throw new TypeError(STALE_TOKEN);
      return [token.#wasm!, token.#ptr];
    };
    release = (token) => {
      const ptr = token.#ptr;
      token.#ptr = 0;
      // A token kept past its handler mustn't keep the instance alive
      token.#wasm = undefined;
      return ptr;
    };
    kindOf = (token) => token.#kind;
  }
}

const TOKEN_CLASSES = {
  [TokenKind.ELEMENT]: () => Element,
  [TokenKind.COMMENT]: () => Comment,
  [TokenKind.TEXT_CHUNK]: () => TextChunk,
  [TokenKind.DOCTYPE]: () => Doctype,
  [TokenKind.END_TAG]: () => EndTag,
  [TokenKind.DOCUMENT_END]: () => DocumentEnd,
};

/** A handle on the token at `ptr` in `wasm`'s memory */
export function createToken(kind: TokenKind, wasm: LolHtmlInstance, ptr: number): Token {
  return new (TOKEN_CLASSES[kind]())(kConstruct, wasm, ptr);
}

/** Makes `token` stale: its pointer, for freeing its box (0 if it was already) */
export function releaseToken(token: Token): number {
  return release(token);
}

export function tokenKind(token: Token): TokenKind {
  return kindOf(token);
}

// -- Shared members (each class lists its own, as production's do) ---------

function mutate(token: Token, fn: number, content: unknown, options: unknown): void {
  const [wasm, ptr] = use(token);
  wasm._callContent(fn, ptr, String(content), options);
}

function call(token: Token, fn: number): number {
  const [wasm, ptr] = use(token);
  return wasm._call(fn, ptr);
}

function callString(token: Token, fn: number, value: unknown): number {
  const [wasm, ptr] = use(token);
  return wasm._callString(fn, ptr, String(value));
}

function getString(token: Token, fn: number): string {
  const [wasm, ptr] = use(token);
  return wasm._callReturningString(fn, ptr);
}

function getObject(token: Token, fn: number, argument?: unknown): unknown {
  const [wasm, ptr] = use(token);
  return wasm._callObject(fn, ptr, argument === undefined ? undefined : String(argument));
}

// -- Element -------------------------------------------------------------

export class Element extends Token {
  constructor(key: symbol, wasm: LolHtmlInstance, ptr: number) {
    super(key, wasm, ptr, TokenKind.ELEMENT);
  }

  before(content: string, options?: ContentOptions): this {
    mutate(this, Fn.element_before, content, options);
    return this;
  }

  after(content: string, options?: ContentOptions): this {
    mutate(this, Fn.element_after, content, options);
    return this;
  }

  replace(content: string, options?: ContentOptions): this {
    mutate(this, Fn.element_replace, content, options);
    return this;
  }

  remove(): this {
    call(this, Fn.element_remove);
    return this;
  }

  get removed(): boolean {
    return call(this, Fn.element_removed) !== 0;
  }

  get tagName(): string {
    return getString(this, Fn.element_tag_name);
  }

  set tagName(name: string) {
    callString(this, Fn.element_set_tag_name, name);
  }

  get namespaceURI(): string {
    return getObject(this, Fn.element_namespace_uri) as string;
  }

  /** [name, value] pairs, names lowercased */
  get attributes(): IterableIterator<[string, string]> {
    return (getObject(this, Fn.element_attributes) as [string, string][])[Symbol.iterator]();
  }

  getAttribute(name: string): string | null {
    return getObject(this, Fn.element_getAttribute, name) as string | null;
  }

  hasAttribute(name: string): boolean {
    return callString(this, Fn.element_hasAttribute, name) !== 0;
  }

  setAttribute(name: string, value: string): this {
    const [wasm, ptr] = use(this);
    wasm._callStrings(Fn.element_setAttribute, ptr, String(name), String(value));
    return this;
  }

  removeAttribute(name: string): this {
    callString(this, Fn.element_removeAttribute, name);
    return this;
  }

  prepend(content: string, options?: ContentOptions): this {
    mutate(this, Fn.element_prepend, content, options);
    return this;
  }

  append(content: string, options?: ContentOptions): this {
    mutate(this, Fn.element_append, content, options);
    return this;
  }

  setInnerContent(content: string, options?: ContentOptions): this {
    mutate(this, Fn.element_setInnerContent, content, options);
    return this;
  }

  removeAndKeepContent(): this {
    call(this, Fn.element_removeAndKeepContent);
    return this;
  }

  /** Runs `handler` on the element's end tag, with `this` the element */
  onEndTag(handler: (this: Element, endTag: EndTag) => void | Promise<void>): void {
    const [wasm, ptr] = use(this);
    wasm._callFunction(Fn.element_onEndTag, ptr, handler.bind(this));
  }
}

// -- EndTag --------------------------------------------------------------

export class EndTag extends Token {
  constructor(key: symbol, wasm: LolHtmlInstance, ptr: number) {
    super(key, wasm, ptr, TokenKind.END_TAG);
  }

  get name(): string {
    return getString(this, Fn.endtag_name);
  }

  set name(name: string) {
    callString(this, Fn.endtag_set_name, name);
  }

  before(content: string, options?: ContentOptions): this {
    mutate(this, Fn.endtag_before, content, options);
    return this;
  }

  after(content: string, options?: ContentOptions): this {
    mutate(this, Fn.endtag_after, content, options);
    return this;
  }

  remove(): this {
    call(this, Fn.endtag_remove);
    return this;
  }
}

// -- Comment -------------------------------------------------------------

export class Comment extends Token {
  constructor(key: symbol, wasm: LolHtmlInstance, ptr: number) {
    super(key, wasm, ptr, TokenKind.COMMENT);
  }

  before(content: string, options?: ContentOptions): this {
    mutate(this, Fn.comment_before, content, options);
    return this;
  }

  after(content: string, options?: ContentOptions): this {
    mutate(this, Fn.comment_after, content, options);
    return this;
  }

  replace(content: string, options?: ContentOptions): this {
    mutate(this, Fn.comment_replace, content, options);
    return this;
  }

  remove(): this {
    call(this, Fn.comment_remove);
    return this;
  }

  get removed(): boolean {
    return call(this, Fn.comment_removed) !== 0;
  }

  get text(): string {
    return getString(this, Fn.comment_text);
  }

  set text(text: string) {
    callString(this, Fn.comment_set_text, text);
  }
}

// -- TextChunk -----------------------------------------------------------

export class TextChunk extends Token {
  constructor(key: symbol, wasm: LolHtmlInstance, ptr: number) {
    super(key, wasm, ptr, TokenKind.TEXT_CHUNK);
  }

  before(content: string, options?: ContentOptions): this {
    mutate(this, Fn.textchunk_before, content, options);
    return this;
  }

  after(content: string, options?: ContentOptions): this {
    mutate(this, Fn.textchunk_after, content, options);
    return this;
  }

  replace(content: string, options?: ContentOptions): this {
    mutate(this, Fn.textchunk_replace, content, options);
    return this;
  }

  remove(): this {
    call(this, Fn.textchunk_remove);
    return this;
  }

  get removed(): boolean {
    return call(this, Fn.textchunk_removed) !== 0;
  }

  /** This chunk's text ("" for the last chunk of a text node) */
  get text(): string {
    return getString(this, Fn.textchunk_text);
  }

  get lastInTextNode(): boolean {
    return call(this, Fn.textchunk_last_in_text_node) !== 0;
  }
}

// -- Doctype -------------------------------------------------------------

export class Doctype extends Token {
  constructor(key: symbol, wasm: LolHtmlInstance, ptr: number) {
    super(key, wasm, ptr, TokenKind.DOCTYPE);
  }

  get name(): string | null {
    return getObject(this, Fn.doctype_name) as string | null;
  }

  get publicId(): string | null {
    return getObject(this, Fn.doctype_public_id) as string | null;
  }

  get systemId(): string | null {
    return getObject(this, Fn.doctype_system_id) as string | null;
  }
}

// -- DocumentEnd ---------------------------------------------------------

export class DocumentEnd extends Token {
  constructor(key: symbol, wasm: LolHtmlInstance, ptr: number) {
    super(key, wasm, ptr, TokenKind.DOCUMENT_END);
  }

  append(content: string, options?: ContentOptions): this {
    mutate(this, Fn.documentend_append, content, options);
    return this;
  }
}
