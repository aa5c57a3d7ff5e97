// Dispatching an event to one worker in a request context of its own: the
// worker's upstream rewrites the request, its usage model sets the
// subrequest limit, and an incoming loop header gives the request depth.
import { RequestContext, usageModelExternalSubrequestLimit } from "../shared/context.js";
import { _kLoopHeader, Request, type Response } from "../standards/index.js";
import type { Worker } from "./worker.js";

export function dispatchFetchTo(worker: Worker<any>, request: Request): Promise<Response> {
  const { upstreamURL, usageModel } = worker.plugins.CorePlugin;
  if (upstreamURL && !request.url.startsWith(upstreamURL.toString())) {
    // Resolve the path and query relative to the upstream's path
    const url = new URL(request.url);
    let pathQuery = url.pathname + url.search;
    if (pathQuery.startsWith("/")) pathQuery = pathQuery.substring(1);
    request = new Request(new URL(pathQuery, upstreamURL), request);
    // The worker sees the request as the upstream would get it, Host
    // included (Miniflare 2 kept the incoming one)
    request.headers.set("host", upstreamURL.host);
  }
  const loop = request.headers.get(_kLoopHeader);
  const requestDepth = (loop === null ? 0 : parseInt(loop) || 0) + 1;
  if (loop !== null) request.headers.delete(_kLoopHeader);
  const context = new RequestContext({
    requestDepth,
    pipelineDepth: 1,
    externalSubrequestLimit: usageModelExternalSubrequestLimit(usageModel),
  });
  const proxy = upstreamURL !== undefined;
  return context.runWith(() => worker.dispatchFetch(request, proxy));
}

export function dispatchScheduledTo(worker: Worker<any>, scheduledTime?: number, cron?: string): Promise<unknown[]> {
  const { usageModel } = worker.plugins.CorePlugin;
  const context = new RequestContext({
    externalSubrequestLimit: usageModelExternalSubrequestLimit(usageModel),
  });
  return context.runWith(() => worker.dispatchScheduled(scheduledTime, cron));
}
