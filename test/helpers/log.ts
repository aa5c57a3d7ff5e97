import { Log, LogLevel } from "../../src/shared/log.js";

export type LogEntry = [level: LogLevel, message: string];

/** A Log that records instead of printing */
export class TestLog extends Log {
  readonly logs: LogEntry[] = [];
  readonly errors: Error[] = [];

  constructor(level = LogLevel.VERBOSE) {
    super(level);
  }

  override log(message: string): void {
    this.logs.push([LogLevel.NONE, message]);
  }

  override logWithLevel(level: LogLevel, message: string): void {
    if (level <= this.level) this.logs.push([level, message]);
  }

  override error(message: Error): void {
    this.errors.push(message);
    super.error(message);
  }

  logsAtLevel(level: LogLevel): string[] {
    return this.logs.filter(([l]) => l === level).map(([, message]) => message);
  }

  clear(): void {
    this.logs.length = 0;
    this.errors.length = 0;
  }
}
