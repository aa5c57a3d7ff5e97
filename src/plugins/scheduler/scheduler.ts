// Fires the crons of the SchedulerPlugin on their schedule: each tick
// dispatches a scheduled event (routed to the parent, as Miniflare 2 did)
// and logs "SCHD <cron> (…ms)". The schedule follows reloads.
import type { MiniflareCore } from "../../core/core.js";
import { defaultClock, defaultTimers } from "../../shared/data.js";
import type { CorePluginSignatures } from "../../core/plugin-set.js";
import { logResponse } from "../../standards/index.js";
import type { ParsedCron, SchedulerPlugin } from "./plugin.js";

// Node's timers take at most 2^31 - 1 ms: longer waits are made of several
const MAX_TIMER_DELAY = 2 ** 31 - 1;

type SchedulerCore = MiniflareCore<CorePluginSignatures & { SchedulerPlugin: typeof SchedulerPlugin }>;

export class CronScheduler {
  readonly #mf: SchedulerCore;
  readonly #handles = new Set<unknown>();
  /** The crons scheduled now, to reschedule only when they change */
  #scheduled?: string;
  #plugin?: SchedulerPlugin;
  #disposed = false;

  constructor(mf: SchedulerCore) {
    this.#mf = mf;
    mf.addEventListener("reload", this.#onReload);
  }

  readonly #onReload = (event: { plugins: { SchedulerPlugin?: SchedulerPlugin } }): void => {
    if (event.plugins.SchedulerPlugin !== undefined) this.#schedule(event.plugins.SchedulerPlugin);
  };

  /** Schedules the crons of the current options */
  async start(): Promise<void> {
    const plugins = await this.#mf.getPlugins();
    this.#schedule(plugins.SchedulerPlugin);
  }

  #schedule(plugin: SchedulerPlugin): void {
    if (this.#disposed) return;
    this.#plugin = plugin;
    const crons = plugin.validatedCrons;
    const key = crons.map(([spec]) => spec).join("\n");
    if (key === this.#scheduled) return;
    this.#clear();
    this.#scheduled = key;
    for (const [spec, cron] of crons) this.#arm(spec, cron);
  }

  #timers() {
    const ctx = this.#plugin?.ctx;
    return { clock: ctx?.clock ?? defaultClock, timers: ctx?.timers ?? defaultTimers };
  }

  /** Waits for the cron's next time after now, fires, and waits again */
  #arm(spec: string, cron: ParsedCron, due?: number): void {
    const { clock, timers } = this.#timers();
    const now = clock();
    const at = due ?? cron.getNextDate(new Date(now)).getTime();
    const delay = Math.max(at - now, 0);
    const handle = timers.setTimeout(() => {
      this.#handles.delete(handle);
      if (delay > MAX_TIMER_DELAY) return this.#arm(spec, cron, at);
      this.#arm(spec, cron);
      return this.#fire(spec);
    }, Math.min(delay, MAX_TIMER_DELAY));
    this.#handles.add(handle);
  }

  async #fire(spec: string): Promise<void> {
    const log = this.#mf.log;
    try {
      const start = process.hrtime();
      const waitUntil = this.#mf.dispatchScheduled(undefined, spec);
      await logResponse(log, { start, method: "SCHD", url: spec, waitUntil });
    } catch (e) {
      // A failing handler is logged; it never stops the schedule (NoOpLog
      // rethrows what it's given: then there's nothing more to do)
      try {
        log.error(e as Error);
      } catch {}
    }
  }

  #clear(): void {
    const { timers } = this.#timers();
    for (const handle of this.#handles) timers.clearTimeout(handle);
    this.#handles.clear();
    this.#scheduled = undefined;
  }

  /** Stops firing, and stops following reloads */
  async dispose(): Promise<void> {
    this.#disposed = true;
    this.#mf.removeEventListener("reload", this.#onReload);
    this.#clear();
  }
}

/** A CronScheduler for `mf`, with its crons scheduled */
export async function startScheduler(mf: SchedulerCore): Promise<CronScheduler> {
  const scheduler = new CronScheduler(mf);
  await scheduler.start();
  return scheduler;
}
