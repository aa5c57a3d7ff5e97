import type { Clock, Timers } from "../../src/shared/data.js";

interface PendingTimer {
  at: number;
  seq: number;
  callback: () => unknown;
}

/**
 * A fake clock and the timers that fire by it, for code taking `{ clock,
 * timers }` (the Durable Object alarm store; `new Miniflare(options,
 * testClock)`). Time stands still until advance() moves it on, so a test
 * says "an hour later" without waiting, and nothing fires early on a slow
 * machine or late on a loaded one.
 */
export class TestClock {
  /** Milliseconds since the epoch; starts at a whole second near the real time */
  now = Math.floor(Date.now() / 1000) * 1000;
  readonly clock: Clock = () => this.now;
  readonly #pending = new Map<number, PendingTimer>();
  #seq = 0;

  readonly timers: Timers = {
    setTimeout: (callback, ms) => {
      const id = ++this.#seq;
      this.#pending.set(id, { at: this.now + Math.max(ms, 0), seq: id, callback });
      return id;
    },
    clearTimeout: (handle) => {
      if (typeof handle === "number") this.#pending.delete(handle);
    },
  };

  /** Timers set and neither fired nor cleared */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Moves time on by `ms`, firing every timer that falls due on the way, in
   * time order (then in the order they were set), each at its own time. A
   * callback's returned promise is awaited before the next timer, so when
   * this resolves, whatever fired has finished. Timers set by callbacks fire
   * too if they fall due within the step.
   */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error("advance(): more than 10,000 timers fired (a timer loop?)");
      let next: PendingTimer | undefined;
      for (const timer of this.#pending.values()) {
        if (timer.at <= target && (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) {
          next = timer;
        }
      }
      if (next === undefined) break;
      this.#pending.delete(next.seq);
      this.now = Math.max(this.now, next.at);
      await next.callback();
    }
    this.now = target;
  }
}
