import { AsyncLocalStorage } from "node:async_hooks";

function parseSubrequestOverride(limit?: string): number | false | undefined {
  const parsed = parseInt(limit as string);
  if (Number.isNaN(parsed)) return undefined;
  if (parsed < 0) return false; // negative means unlimited
  return parsed;
}

export const EXTERNAL_SUBREQUEST_LIMIT_BUNDLED = 50;
export const EXTERNAL_SUBREQUEST_LIMIT_UNBOUND = 1000;
export const INTERNAL_SUBREQUEST_LIMIT = 1000;
const MAX_REQUEST_DEPTH = 16;
const MAX_PIPELINE_DEPTH = 32;

export type UsageModel = "bundled" | "unbound";

export function usageModelExternalSubrequestLimit(model?: UsageModel): number {
  return model === "unbound"
    ? EXTERNAL_SUBREQUEST_LIMIT_UNBOUND
    : EXTERNAL_SUBREQUEST_LIMIT_BUNDLED;
}

const depthError =
  "Subrequest depth limit exceeded. This request recursed through Workers " +
  "too many times. This can happen e.g. if you have a Worker or Durable " +
  "Object that calls other Workers or objects recursively.";

const requestContextStorage = new AsyncLocalStorage<RequestContext>();

export function getRequestContext(): RequestContext | undefined {
  return requestContextStorage.getStore();
}

export const IN_REQUEST_ERROR_MESSAGE =
  "Some functionality, such as asynchronous I/O (fetch, Cache API, KV), " +
  "timeouts (setTimeout, setInterval), and generating random values " +
  "(crypto.getRandomValues, crypto.subtle.generateKey), can only be " +
  "performed while handling a request.";

/** Throws unless called (asynchronously) from inside a request handler */
export function assertInRequest(): void {
  if (!requestContextStorage.getStore()) {
    throw new Error(IN_REQUEST_ERROR_MESSAGE);
  }
}

export interface RequestContextOptions {
  /** +1 for each Durable Object fetch or HTTP hop through Miniflare */
  requestDepth?: number;
  /** +1 for each service binding fetch */
  pipelineDepth?: number;
  durableObject?: boolean;
  externalSubrequestLimit?: number | false;
  internalSubrequestLimit?: number | false;
}

/**
 * State of one incoming event (fetch, scheduled, queue, DO fetch or alarm):
 * recursion depths, subrequest counts and the frozen clock. Lives in an
 * AsyncLocalStorage so every async continuation of the handler sees it.
 */
export class RequestContext {
  readonly requestDepth: number;
  readonly pipelineDepth: number;
  readonly durableObject: boolean;
  readonly externalSubrequestLimit: number | false;
  readonly internalSubrequestLimit: number | false;
  #externalSubrequests = 0;
  #internalSubrequests = 0;
  #currentTime: number;

  constructor({
    requestDepth = 1,
    pipelineDepth = 1,
    durableObject = false,
    externalSubrequestLimit = EXTERNAL_SUBREQUEST_LIMIT_BUNDLED,
    internalSubrequestLimit = INTERNAL_SUBREQUEST_LIMIT,
  }: RequestContextOptions = {}) {
    if (requestDepth > MAX_REQUEST_DEPTH) {
      throw new Error(
        `${depthError}\nWorkers and objects can recurse up to ${MAX_REQUEST_DEPTH} times.\nIf you're trying to fetch from an origin server, make sure you've set the \`upstream\` option.`
      );
    }
    if (pipelineDepth > MAX_PIPELINE_DEPTH) {
      throw new Error(
        `${depthError}\nService bindings can recurse up to ${MAX_PIPELINE_DEPTH} times.`
      );
    }
    this.requestDepth = requestDepth;
    this.pipelineDepth = pipelineDepth;
    this.durableObject = durableObject;
    // Environment overrides are read per context so tests can change them
    const externalOverride = parseSubrequestOverride(
      process.env.MINIFLARE_SUBREQUEST_LIMIT
    );
    const internalOverride = parseSubrequestOverride(
      process.env.MINIFLARE_INTERNAL_SUBREQUEST_LIMIT
    );
    this.externalSubrequestLimit = externalOverride ?? externalSubrequestLimit;
    this.internalSubrequestLimit = internalOverride ?? internalSubrequestLimit;
    this.#currentTime = Date.now();
  }

  runWith<T>(closure: () => T): T {
    return requestContextStorage.run(this, closure);
  }

  get externalSubrequests(): number {
    return this.#externalSubrequests;
  }

  get internalSubrequests(): number {
    return this.#internalSubrequests;
  }

  incrementExternalSubrequests(count = 1): void {
    this.#externalSubrequests += count;
    const limit = this.externalSubrequestLimit;
    if (limit !== false && this.#externalSubrequests > limit) {
      throw new Error(
        `Too many subrequests. Workers can make up to ${limit} subrequests per request.\nA subrequest is a call to fetch(), a redirect, or a call to any Cache API method.`
      );
    }
  }

  incrementInternalSubrequests(count = 1): void {
    this.#internalSubrequests += count;
    const limit = this.internalSubrequestLimit;
    if (limit !== false && this.#internalSubrequests > limit) {
      throw new Error(
        `Too many API requests by single worker invocation. Workers can make up to ${limit} KV and Durable Object requests per invocation.`
      );
    }
  }

  /** The frozen time seen by Date inside the worker */
  get currentTime(): number {
    return this.#currentTime;
  }

  /** Called after I/O completes: time only moves on across I/O */
  advanceCurrentTime(): void {
    this.#currentTime = Date.now();
  }
}
