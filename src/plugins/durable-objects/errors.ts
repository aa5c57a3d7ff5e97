import { MiniflareError } from "../../shared/errors.js";

export type DurableObjectErrorCode =
  | "ERR_SCRIPT_NOT_FOUND" // a scriptName that isn't mounted
  | "ERR_CLASS_NOT_FOUND" // a className the script doesn't export
  | "ERR_RESPONSE_TYPE" // fetch() returned something other than a Response
  | "ERR_DESERIALIZATION" // stored bytes V8 can't deserialise
  | "ERR_NO_HANDLER"; // no fetch() or alarm() method on the object

export class DurableObjectError extends MiniflareError<DurableObjectErrorCode> {}
