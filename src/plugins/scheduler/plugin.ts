// Cron triggers: the `crons` option (--cron, wrangler [triggers] crons),
// checked when the plugin is set up. CronScheduler (./scheduler.ts) fires
// them on their schedule.
import { parseCronExpression } from "cron-schedule";
import { MiniflareError } from "../../shared/errors.js";
import { Option, OptionType, Plugin, type PluginContext } from "../../shared/plugin.js";

export type SchedulerErrorCode = "ERR_INVALID_CRON"; // a cron expression that doesn't parse

export class SchedulerError extends MiniflareError<SchedulerErrorCode> {}

/**
 * A parsed cron expression: when it's next due. (cron-schedule's Cron, by
 * shape: the published types don't import that package, which is bundled.)
 */
export interface ParsedCron {
  getNextDate(startDate?: Date): Date;
}

export interface SchedulerOptions {
  crons?: string[];
}

export class SchedulerPlugin extends Plugin<SchedulerOptions> implements SchedulerOptions {
  @Option({
    type: OptionType.ARRAY,
    name: "cron",
    alias: "t",
    description: "CRON expression for triggering scheduled events",
    logName: "CRON Expressions",
    fromWrangler: ({ triggers }) => triggers?.crons,
  })
  crons?: string[];

  /** Each cron with its parsed schedule, once setup() has run */
  #validatedCrons: [spec: string, cron: ParsedCron][] = [];

  constructor(ctx: PluginContext, options?: SchedulerOptions) {
    super(ctx);
    this.assignOptions(options);
  }

  get validatedCrons(): readonly [spec: string, cron: ParsedCron][] {
    return this.#validatedCrons;
  }

  setup(): void {
    const validated: [string, ParsedCron][] = [];
    for (const spec of this.crons ?? []) {
      try {
        validated.push([spec, parseCronExpression(spec)]);
      } catch (e: any) {
        throw new SchedulerError("ERR_INVALID_CRON", `Unable to parse CRON "${spec}": ${e?.message ?? e}`);
      }
    }
    this.#validatedCrons = validated;
  }
}
