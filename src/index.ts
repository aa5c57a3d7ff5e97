// The public API of the package: explicit named exports only.
export { Miniflare, type MiniflareOptions, startREPL } from "./miniflare.js";
export { PLUGINS } from "./plugins.js";
export { updateCheck, type UpdateCheckOptions } from "./update.js";
export { MiniflareCore, ReloadEvent } from "./core/core.js";
export { CorePlugin } from "./plugins/core/plugin.js";
export { MiniflareCoreError } from "./plugins/core/errors.js";
export { BindingsPlugin, Fetcher } from "./plugins/bindings/plugin.js";
export { BuildPlugin, BuildError } from "./plugins/build/plugin.js";
export { KVNamespace, KVPlugin } from "./plugins/kv/index.js";
export { CronScheduler, SchedulerError, SchedulerPlugin, startScheduler } from "./plugins/scheduler/index.js";
export { WebSocketPlugin } from "./plugins/web-sockets/index.js";
// Each of these index files chooses what its plugin exports
export * from "./plugins/cache/index.js";
export * from "./plugins/html-rewriter/index.js";
export * from "./plugins/sites/index.js";
export {
  AlarmStore,
  DurableObjectError,
  DurableObjectId,
  DurableObjectNamespace,
  DurableObjectState,
  DurableObjectStorage,
  DurableObjectStub,
  DurableObjectTransaction,
  DurableObjectsPlugin,
} from "./plugins/durable-objects/index.js";
export {
  FileStorage,
  FileStorageError,
  MemoryStorage,
  PluginStorageFactory,
  RedisStorage,
  VariedStorageFactory,
} from "./storage/index.js";
export { VMScriptRunner, VMScriptRunnerError } from "./runtime/index.js";
export {
  Compatibility,
  InputGate,
  Log,
  LogLevel,
  MiniflareError,
  Mutex,
  NoOpLog,
  Option,
  OptionType,
  OutputGate,
  Plugin,
  RequestContext,
  Storage,
  getRequestContext,
  TypedEventTarget,
  ThrowingEventTarget,
} from "./shared/index.js";
export {
  Request,
  Response,
  fetch,
  createFetchMock,
  FetchEvent,
  ScheduledEvent,
  FetchError,
  ExecutionContext,
  ScheduledController,
  ServiceWorkerGlobalScope,
  WorkerGlobalScope,
  IdentityTransformStream,
  FixedLengthStream,
  DOMException,
  Navigator,
  atob,
  btoa,
  WebSocket,
  WebSocketPair,
  MessageEvent,
  CloseEvent,
  ErrorEvent,
  coupleWebSocket,
} from "./standards/index.js";
