/**
 * Input and output gates, as Durable Objects have them
 * (https://blog.cloudflare.com/durable-objects-easy-fast-correct-choose-three/).
 *
 * Input gate: while a storage operation or `blockConcurrencyWhile()` runs,
 * no other event (incoming request, I/O result, timer) is delivered to the
 * object. Gates nest: running a closure with a gate closed gives the closure
 * a child gate that is open, so I/O inside `blockConcurrencyWhile()` still
 * completes instead of deadlocking; closing a child also closes its parents.
 *
 * Output gate: outgoing messages (fetches, responses) wait until every write
 * started before them has been confirmed.
 *
 * Gates travel with async context, so any code can find "its" gate without
 * it being passed around.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { setImmediate as setImmediateCallback } from "node:timers";

// Cheaper than node:timers/promises' setImmediate (no options, no signal)
function nextImmediate(): Promise<void> {
  return new Promise((resolve) => setImmediateCallback(resolve));
}

const inputGateStorage = new AsyncLocalStorage<InputGate>();
const outputGateStorage = new AsyncLocalStorage<OutputGate>();

/**
 * Call before delivering an event or an I/O result to worker code: resolves
 * once the current input gate (if any) is open.
 */
export function waitForOpenInputGate(): Promise<void> | undefined {
  return inputGateStorage.getStore()?.waitForOpen();
}

/** Runs `closure` with the current input gate (if any) closed */
export function runWithInputGateClosed<T>(
  closure: () => Promise<T>,
  allowConcurrency = false
): Promise<T> {
  if (allowConcurrency) return closure();
  const gate = inputGateStorage.getStore();
  if (gate === undefined) return closure();
  return gate.runWithClosed(closure);
}

/** Call before sending anything out: resolves once pending writes confirm */
export function waitForOpenOutputGate(): Promise<void> | undefined {
  return outputGateStorage.getStore()?.waitForOpen();
}

/** Registers a pending write with the current output gate (if any) */
export function waitUntilOnOutputGate<T>(
  promise: Promise<T>,
  allowUnconfirmed = false
): Promise<T> {
  if (allowUnconfirmed) return promise;
  outputGateStorage.getStore()?.waitUntil(promise);
  return promise;
}

export function getInputGate(): InputGate | undefined {
  return inputGateStorage.getStore();
}

export class InputGate {
  #lockCount = 0;
  readonly #waiters: (() => void)[] = [];
  readonly #parent?: InputGate;

  constructor(parent?: InputGate) {
    this.#parent = parent;
  }

  /** Runs `closure` with this gate as the current one, once it is open */
  async runWith<T>(closure: () => Promise<T> | T): Promise<T> {
    await this.waitForOpen();
    return inputGateStorage.run(this, closure);
  }

  get isOpen(): boolean {
    return this.#lockCount === 0;
  }

  async waitForOpen(): Promise<void> {
    // Let already-queued work (e.g. a closure that is about to close the
    // gate) run first, so ordering is the same as in the real runtime
    await nextImmediate();
    if (this.#lockCount === 0) return;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async runWithClosed<T>(closure: () => Promise<T>): Promise<T> {
    this.#lock();
    await Promise.resolve();
    const child = new InputGate(this);
    try {
      return await inputGateStorage.run(child, closure);
    } finally {
      // Unlock on the next turn, so results of the closure are delivered
      // before anything that was waiting
      setImmediateCallback(this.#unlock);
    }
  }

  #lock(): void {
    this.#lockCount++;
    if (this.#parent) this.#parent.#lock();
  }

  #unlock = async (): Promise<void> => {
    if (this.#lockCount <= 0) throw new Error("InputGate unlocked too often");
    this.#lockCount--;
    // Release waiters one at a time: each may close the gate again
    while (this.#lockCount === 0 && this.#waiters.length > 0) {
      this.#waiters.shift()!();
      await nextImmediate();
    }
    if (this.#parent) return this.#parent.#unlock();
  };
}

export class OutputGate {
  readonly #pending: Promise<unknown>[] = [];

  /** Runs `closure` under this gate, then waits for all pending writes */
  async runWith<T>(closure: () => Promise<T> | T): Promise<T> {
    try {
      return await outputGateStorage.run(this, closure);
    } finally {
      await this.waitForOpen();
    }
  }

  async waitForOpen(): Promise<void> {
    await Promise.all(this.#pending);
  }

  waitUntil(promise: Promise<unknown>): void {
    this.#pending.push(promise);
  }
}
