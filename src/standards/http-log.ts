import { blue, bold, dim, green, grey, red, yellow } from "kleur/colors";
import type { Log } from "../shared/log.js";

export interface LogResponseOptions {
  /** `process.hrtime()` when the request started */
  start: [seconds: number, nanoseconds: number];
  /** `process.cpuUsage()` when the request started, to log CPU time */
  startCpu?: NodeJS.CpuUsage;
  method: string;
  url: string;
  status?: number;
  waitUntil?: Promise<unknown[]>;
}

function millisFromHRTime([seconds, nanoseconds]: [number, number]): string {
  return `${((seconds * 1e9 + nanoseconds) / 1e6).toFixed(2)}ms`;
}

function millisFromCPUTime(microseconds: number): string {
  return `${(microseconds / 1e3).toFixed(2)}ms`;
}

function colourFromHTTPStatus(status: number): (input: string) => string {
  if (200 <= status && status < 300) return green;
  if (400 <= status && status < 500) return yellow;
  if (500 <= status) return red;
  return blue;
}

let statusCodes: Record<number, string | undefined> | undefined;
function statusText(status: number): string | undefined {
  // node:http is only loaded once something is actually logged
  statusCodes ??= process.getBuiltinModule("node:http").STATUS_CODES;
  return statusCodes[status];
}

/**
 * Logs a line like `GET http://localhost/ 200 OK (1.23ms, waitUntil: 2.34ms)
 * (CPU: ~1.00ms, waitUntil: ~2.00ms)`, after waiting for `waitUntil` (whose
 * rejection is logged as an error).
 */
export async function logResponse(
  log: Log,
  { start, startCpu, method, url, status, waitUntil }: LogResponseOptions
): Promise<void> {
  const cpuParts: string[] = [];
  const responseTime = millisFromHRTime(process.hrtime(start));
  if (startCpu !== undefined) {
    const responseTimeCpu = millisFromCPUTime(process.cpuUsage(startCpu).user);
    cpuParts.push(dim(grey(` (CPU: ~${responseTimeCpu}`)));
  }

  let waitUntilResponse: unknown[] | undefined;
  try {
    waitUntilResponse = await waitUntil;
  } catch (e) {
    // Still log the waitUntil time, as if there were waitUntil promises
    waitUntilResponse = [""];
    log.error(e as Error);
  }
  const waitUntilTime = millisFromHRTime(process.hrtime(start));
  if (startCpu !== undefined) {
    if (waitUntilResponse?.length) {
      const waitUntilTimeCpu = millisFromCPUTime(process.cpuUsage(startCpu).user);
      cpuParts.push(dim(grey(`, waitUntil: ~${waitUntilTimeCpu}`)));
    }
    cpuParts.push(dim(grey(")")));
  }

  log.log(
    [
      `${bold(method)} ${url} `,
      status
        ? colourFromHTTPStatus(status)(`${bold(String(status))} ${statusText(status)} `)
        : "",
      grey(`(${responseTime}`),
      waitUntilResponse?.length ? grey(`, waitUntil: ${waitUntilTime}`) : "",
      grey(")"),
      ...cpuParts,
    ].join("")
  );
}
