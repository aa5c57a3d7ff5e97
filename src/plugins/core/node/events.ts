/** `node:events` for `nodejs_compat` */
import events from "node:events";

export const eventsModule = {
  default: events,
  EventEmitter: events.EventEmitter,
  EventEmitterAsyncResource: events.EventEmitterAsyncResource,
  captureRejectionSymbol: events.captureRejectionSymbol,
  defaultMaxListeners: events.defaultMaxListeners,
  errorMonitor: events.errorMonitor,
  getEventListeners: events.getEventListeners,
  listenerCount: events.listenerCount,
  on: events.on,
  once: events.once,
  setMaxListeners: events.setMaxListeners,
};
