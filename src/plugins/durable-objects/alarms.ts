// Schedules Durable Object alarms. Every alarm is kept in one storage
// namespace, keyed "<binding>:<hex id>" with its time in the metadata, so
// alarms survive restarts with persistence. Timers are only set for alarms
// due soon; a scan every 30 seconds picks up the rest. Time comes from the
// injected clock and timers (Date.now() and Node's by default), so tests
// move a fake clock on instead of waiting. A pending alarm keeps the process
// alive, as a timer does, until dispose(); with none, nothing here does.
import { type Clock, defaultClock, defaultTimers, type Timers } from "../../shared/data.js";
import type { Log } from "../../shared/log.js";
import type { Storage } from "../../shared/storage.js";
import type { AlarmBridge } from "./storage.js";

export const ALARM_STORE_NAMESPACE = "__MINIFLARE_ALARMS__";
const SCAN_INTERVAL = 30_000; /* 30s */
// An alarm set this close is scheduled straight away (the scan may be 30s off)
const SCHEDULE_WITHIN = SCAN_INTERVAL + 1_000;
const EMPTY = new Uint8Array(0);

/** Runs the alarm of the object with key "<binding>:<hex id>" */
export type AlarmCallback = (objectKey: string) => Promise<void>;

export interface AlarmStoreOptions {
  /** The current time, in milliseconds since the epoch (default: Date.now()) */
  clock?: Clock;
  /** Timers firing by `clock`'s time (default: Node's) */
  timers?: Timers;
}

interface ScheduledAlarm {
  scheduledTime: number;
  timeout?: unknown;
}

export class AlarmStore {
  readonly #log: Log;
  readonly #clock: Clock;
  readonly #timers: Timers;
  #store?: Storage;
  #callback?: AlarmCallback;
  readonly #alarms = new Map<string, ScheduledAlarm>();
  #scan?: unknown;
  #disposed = false;

  constructor(log: Log, { clock = defaultClock, timers = defaultTimers }: AlarmStoreOptions = {}) {
    this.#log = log;
    this.#clock = clock;
    this.#timers = timers;
  }

  /** Loads the persisted alarms (none are run until start()) */
  async setup(store: Storage): Promise<void> {
    this.#store = store;
    const { keys } = await store.list<{ scheduledTime?: unknown }>();
    for (const { name, metadata } of keys) {
      const time = metadata?.scheduledTime;
      // A malformed entry fires straight away rather than never
      this.#alarms.set(name, { scheduledTime: typeof time === "number" ? time : 0 });
    }
  }

  /** Starts firing alarms: any that fell due while stopped fire now */
  start(callback: AlarmCallback): void {
    this.#callback = callback;
    if (this.#scan === undefined) this.#scanAlarms();
  }

  #scanAlarms = (): void => {
    const now = this.#clock();
    for (const [objectKey, alarm] of this.#alarms) {
      if (alarm.timeout === undefined && alarm.scheduledTime < now + SCAN_INTERVAL) {
        this.#schedule(now, objectKey, alarm);
      }
    }
    this.#scan = this.#timers.setTimeout(this.#scanAlarms, SCAN_INTERVAL);
    this.#holdProcess();
  };

  /** The scan keeps Node running while an alarm is pending, and only then */
  #holdProcess(): void {
    const scan = this.#scan as { ref?(): unknown; unref?(): unknown } | undefined;
    if (this.#alarms.size > 0) scan?.ref?.();
    else scan?.unref?.();
  }

  #schedule(now: number, objectKey: string, alarm: ScheduledAlarm): void {
    if (this.#callback === undefined) return; // start() schedules it
    this.#timers.clearTimeout(alarm.timeout);
    // (the run is returned for timers that wait for it; #fire never rejects)
    alarm.timeout = this.#timers.setTimeout(() => {
      alarm.timeout = undefined;
      return this.#fire(objectKey, alarm);
    }, Math.max(alarm.scheduledTime - now, 0));
  }

  async #fire(objectKey: string, alarm: ScheduledAlarm): Promise<void> {
    if (this.#disposed || this.#alarms.get(objectKey) !== alarm) return;
    try {
      await this.#callback?.(objectKey);
    } catch (e: any) {
      // An alarm must never take the process down (NoOpLog rethrows what
      // it's given to log)
      try {
        this.#log.error(e);
      } catch {}
    }
  }

  bridge(objectKey: string): AlarmBridge {
    return {
      setAlarm: (scheduledTime) => this.setAlarm(objectKey, scheduledTime),
      deleteAlarm: () => this.deleteAlarm(objectKey),
    };
  }

  async setAlarm(objectKey: string, scheduledTime: number): Promise<void> {
    const previous = this.#alarms.get(objectKey);
    if (previous) this.#timers.clearTimeout(previous.timeout);
    const alarm: ScheduledAlarm = { scheduledTime };
    this.#alarms.set(objectKey, alarm);
    const now = this.#clock();
    if (scheduledTime < now + SCHEDULE_WITHIN) this.#schedule(now, objectKey, alarm);
    this.#holdProcess();
    await this.#store?.put(objectKey, { value: EMPTY, metadata: { scheduledTime } });
  }

  async deleteAlarm(objectKey: string): Promise<void> {
    const alarm = this.#alarms.get(objectKey);
    if (alarm === undefined) return;
    this.#timers.clearTimeout(alarm.timeout);
    this.#alarms.delete(objectKey);
    this.#holdProcess();
    await this.#store?.delete(objectKey);
  }

  /** Runs alarms now, whenever they are due: all of them, or those of `objectKeys` */
  async flushAlarms(objectKeys?: string[]): Promise<void> {
    const keys = objectKeys ?? [...this.#alarms.keys()];
    for (const key of keys) {
      const alarm = this.#alarms.get(key);
      if (alarm === undefined) continue;
      this.#timers.clearTimeout(alarm.timeout);
      alarm.timeout = undefined;
      await this.#callback?.(key);
    }
  }

  dispose(): void {
    this.#disposed = true;
    this.#timers.clearTimeout(this.#scan);
    this.#scan = undefined;
    for (const alarm of this.#alarms.values()) this.#timers.clearTimeout(alarm.timeout);
    this.#alarms.clear();
  }
}
