export { type ParsedCron, SchedulerError, type SchedulerErrorCode, SchedulerPlugin, type SchedulerOptions } from "./plugin.js";
export { CronScheduler, startScheduler } from "./scheduler.js";
