/**
 * `Body#formData()` parsing. Miniflare 2 used busboy; this is an
 * independent parser making the same decisions, so results and error messages
 * match:
 *
 * - Content-Type: unparsable → "Malformed content type"; neither
 *   multipart/form-data nor application/x-www-form-urlencoded →
 *   "Unsupported content type: <header>"; multipart without a boundary →
 *   "Multipart: Boundary not found".
 * - multipart: a preamble before the first boundary is ignored; parts without
 *   a `form-data` Content-Disposition are skipped; a part is a file if it has
 *   a non-empty `filename` (or `filename*`) or type application/octet-stream;
 *   file paths are preserved; files default to type text/plain; base64
 *   Content-Transfer-Encoding is decoded for files; a missing closing
 *   boundary → "Unexpected end of form"; bad part headers → "Malformed part
 *   header".
 * - urlencoded: `+` is a space, a malformed `%` escape →
 *   "Malformed urlencoded form".
 *
 * All errors are `TypeError`s (Miniflare 2 rethrew busboy's errors as such).
 * Unlike busboy, header parameters are decoded as UTF-8 (latin1 if invalid),
 * and there is no 1MiB field-size truncation.
 */

export interface FormDataClasses {
  FormData: typeof globalThis.FormData;
  File: typeof globalThis.File;
}

// RFC 7230 tchar
function isTokenChar(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) || // 0-9
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x61 && code <= 0x7a) || // a-z
    "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code))
  );
}

// Header field value characters: HTAB, SP, VCHAR, obs-text
function isFieldChar(code: number): boolean {
  return code === 0x09 || (code >= 0x20 && code <= 0x7e) || code >= 0x80;
}

function isWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

interface MediaType {
  type: string;
  subtype: string;
  params: Record<string, string>;
}

/** Parses `; name=value` parameters (token or quoted-string values) */
function parseParams(
  str: string,
  i: number,
  params: Record<string, string>,
  allowExtended: boolean
): boolean {
  while (i < str.length) {
    while (i < str.length && isWhitespace(str.charCodeAt(i))) i++;
    if (i === str.length) break;
    if (str[i++] !== ";") return false;
    while (i < str.length && isWhitespace(str.charCodeAt(i))) i++;
    if (i === str.length) return false;

    const nameStart = i;
    while (i < str.length && isTokenChar(str.charCodeAt(i))) i++;
    if (i === str.length || str[i] !== "=" || i === nameStart) return false;
    let name = str.slice(nameStart, i);
    i++; // "="
    if (i === str.length) return false;

    let value: string;
    if (allowExtended && name.endsWith("*")) {
      // RFC 5987 extended value: charset'language'percent-encoded
      const firstQuote = str.indexOf("'", i);
      if (firstQuote === -1) return false;
      const charset = str.slice(i, firstQuote);
      const secondQuote = str.indexOf("'", firstQuote + 1);
      if (secondQuote === -1) return false;
      i = secondQuote + 1;
      const valueStart = i;
      while (i < str.length && !isWhitespace(str.charCodeAt(i)) && str[i] !== ";") i++;
      if (i === valueStart) return false;
      const decoded = percentDecode(str.slice(valueStart, i), false);
      if (decoded === undefined) return false;
      value = decodeBytes(decoded, charset);
    } else if (str[i] === '"') {
      i++;
      value = "";
      let closed = false;
      while (i < str.length) {
        const char = str[i];
        if (char === "\\" && i + 1 < str.length) {
          value += str[i + 1];
          i += 2;
        } else if (char === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += char;
          i++;
        }
      }
      if (!closed) return false;
    } else {
      const valueStart = i;
      while (i < str.length && isTokenChar(str.charCodeAt(i))) i++;
      if (i === valueStart) return false;
      value = str.slice(valueStart, i);
    }
    name = name.toLowerCase();
    // First occurrence wins
    if (params[name] === undefined) params[name] = value;
  }
  return true;
}

export function parseMediaType(str: string): MediaType | undefined {
  let i = 0;
  while (i < str.length && isTokenChar(str.charCodeAt(i))) i++;
  if (i === 0 || str[i] !== "/") return undefined;
  const type = str.slice(0, i).toLowerCase();
  const subtypeStart = ++i;
  while (i < str.length && isTokenChar(str.charCodeAt(i))) i++;
  if (i === subtypeStart) return undefined;
  const subtype = str.slice(subtypeStart, i).toLowerCase();
  const params: Record<string, string> = Object.create(null);
  if (!parseParams(str, i, params, false)) return undefined;
  return { type, subtype, params };
}

function parseDisposition(str: string): { type: string; params: Record<string, string> } | undefined {
  let i = 0;
  while (i < str.length && isTokenChar(str.charCodeAt(i))) i++;
  if (i === 0) return undefined;
  const type = str.slice(0, i).toLowerCase();
  const params: Record<string, string> = Object.create(null);
  if (!parseParams(str, i, params, true)) return undefined;
  return { type, params };
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/** Percent-decodes a latin1 string to bytes, undefined if malformed */
function percentDecode(str: string, plusIsSpace: boolean): Uint8Array | undefined {
  const bytes = new Uint8Array(str.length);
  let length = 0;
  for (let i = 0; i < str.length; i++) {
    const code = str.charCodeAt(i);
    if (code === 0x25 /* % */) {
      if (i + 2 >= str.length) return undefined;
      const high = hexValue(str.charCodeAt(i + 1));
      const low = hexValue(str.charCodeAt(i + 2));
      if (high === -1 || low === -1) return undefined;
      bytes[length++] = (high << 4) | low;
      i += 2;
    } else if (plusIsSpace && code === 0x2b /* + */) {
      bytes[length++] = 0x20;
    } else {
      bytes[length++] = code & 0xff;
    }
  }
  return bytes.subarray(0, length);
}

function decodeBytes(bytes: Uint8Array, charset: string): string {
  let label = charset.trim().toLowerCase();
  if (label === "" || label === "utf8") label = "utf-8";
  if (label === "latin1" || label === "binary") label = "iso-8859-1";
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return new TextDecoder().decode(bytes);
  }
}

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });
function decodeHeaderValue(bytes: Uint8Array): string {
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    return Buffer.from(bytes).toString("latin1");
  }
}

const MAX_HEADER_SIZE = 16 * 1024;
const MAX_HEADER_PAIRS = 2000;

/**
 * Parses part headers starting at `pos`, which must end (CRLF CRLF) before
 * `end`. Returns the headers and the index of the part's body.
 */
function parsePartHeaders(
  data: Buffer,
  pos: number,
  end: number
): [headers: Record<string, string[]>, bodyStart: number] {
  const malformed = () => new TypeError("Malformed part header");
  const headers: Record<string, string[]> = Object.create(null);
  const limit = Math.min(end, pos + MAX_HEADER_SIZE);
  let pairs = 0;
  for (;;) {
    // Name
    const nameStart = pos;
    while (pos < limit && isTokenChar(data[pos])) pos++;
    if (pos >= limit || data[pos] !== 0x3a /* : */ || pos === nameStart) throw malformed();
    const name = data.toString("latin1", nameStart, pos).toLowerCase();
    pos++;
    while (pos < limit && isWhitespace(data[pos])) pos++;
    // Value, possibly folded over several lines
    const valueParts: Uint8Array[] = [];
    for (;;) {
      const valueStart = pos;
      while (pos < limit && isFieldChar(data[pos])) pos++;
      valueParts.push(data.subarray(valueStart, pos));
      if (pos + 1 >= limit || data[pos] !== 0x0d || data[pos + 1] !== 0x0a) throw malformed();
      pos += 2;
      if (pos < limit && isWhitespace(data[pos])) continue; // folded
      break;
    }
    if (++pairs < MAX_HEADER_PAIRS) {
      const value = decodeHeaderValue(Buffer.concat(valueParts));
      (headers[name] ??= []).push(value);
    }
    if (pos < limit && data[pos] === 0x0d) {
      if (pos + 1 >= limit || data[pos + 1] !== 0x0a) throw malformed();
      return [headers, pos + 2];
    }
  }
}

function parseMultipart(
  body: Buffer,
  boundary: string,
  filesAsFiles: boolean,
  classes: FormDataClasses
): FormData {
  const formData = new classes.FormData();
  // Like busboy, pretend the body starts with a CRLF so a boundary at the very
  // start matches the "\r\n--boundary" delimiter
  const data = Buffer.concat([Buffer.from("\r\n"), body]);
  const delimiter = Buffer.from(`\r\n--${boundary}`, "latin1");
  const unexpectedEnd = () => new TypeError("Unexpected end of form");

  let pos = data.indexOf(delimiter);
  if (pos === -1) throw unexpectedEnd();
  pos += delimiter.length;
  for (;;) {
    if (data[pos] === 0x2d && data[pos + 1] === 0x2d) {
      // Closing delimiter: anything after it is an epilogue
      return formData;
    }
    if (data[pos] !== 0x0d || data[pos + 1] !== 0x0a) {
      // Not actually a delimiter: busboy discards data until the next one
      const next = data.indexOf(delimiter, pos);
      if (next === -1) throw unexpectedEnd();
      pos = next + delimiter.length;
      continue;
    }
    const headersStart = pos + 2;
    const next = data.indexOf(delimiter, headersStart);
    if (next === -1) {
      // Report bad headers before the missing end, as busboy would
      parsePartHeaders(data, headersStart, data.length);
      throw unexpectedEnd();
    }
    const [headers, bodyStart] = parsePartHeaders(data, headersStart, next);
    addPart(formData, headers, data.subarray(bodyStart, next), filesAsFiles, classes);
    pos = next + delimiter.length;
  }
}

function addPart(
  formData: FormData,
  headers: Record<string, string[]>,
  content: Buffer,
  filesAsFiles: boolean,
  classes: FormDataClasses
): void {
  const dispositionHeader = headers["content-disposition"]?.[0];
  if (dispositionHeader === undefined) return;
  const disposition = parseDisposition(dispositionHeader);
  if (disposition === undefined || disposition.type !== "form-data") return;

  const params = disposition.params;
  // Empty names/filenames count as missing
  const name = params.name || undefined;
  const filename = params["filename*"] || params.filename || undefined;

  let type = "text/plain";
  let charset = "utf8";
  const contentTypeHeader = headers["content-type"]?.[0];
  if (contentTypeHeader !== undefined) {
    const contentType = parseMediaType(contentTypeHeader);
    if (contentType !== undefined) {
      type = `${contentType.type}/${contentType.subtype}`;
      if (contentType.params.charset !== undefined) {
        charset = contentType.params.charset.toLowerCase();
      }
    }
  }
  const encoding = headers["content-transfer-encoding"]?.[0].toLowerCase() ?? "7bit";

  // A missing name becomes "undefined", as FormData stringifies it
  const entryName = String(name);
  if (type === "application/octet-stream" || filename !== undefined) {
    let bytes: Buffer = content;
    if (encoding === "base64") bytes = Buffer.from(content.toString("latin1"), "base64");
    if (filesAsFiles) {
      formData.append(entryName, new classes.File([bytes as Uint8Array as BlobPart], String(filename), { type }));
    } else {
      formData.append(entryName, bytes.toString("utf8"));
    }
  } else {
    formData.append(entryName, decodeBytes(content, charset));
  }
}

function parseUrlencoded(body: Buffer, charset: string, classes: FormDataClasses): FormData {
  const formData = new classes.FormData();
  const str = body.toString("latin1");
  if (str === "") return formData;
  for (const pair of str.split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const rawName = equals === -1 ? pair : pair.slice(0, equals);
    const rawValue = equals === -1 ? "" : pair.slice(equals + 1);
    const name = percentDecode(rawName, true);
    const value = percentDecode(rawValue, true);
    if (name === undefined || value === undefined) {
      throw new TypeError("Malformed urlencoded form");
    }
    formData.append(decodeBytes(name, charset), decodeBytes(value, charset));
  }
  return formData;
}

export type FormDataParser = (
  body: Uint8Array,
  filesAsFiles: boolean,
  classes: FormDataClasses
) => FormData;

/**
 * Validates a Content-Type for form data parsing, returning a parser for the
 * body. Throws (before the body is read) if the type can't be parsed.
 */
export function formDataParserFor(contentType: string): FormDataParser {
  const mediaType = parseMediaType(contentType);
  if (mediaType === undefined) throw new TypeError("Malformed content type");
  if (mediaType.type === "multipart" && mediaType.subtype === "form-data") {
    const boundary = mediaType.params.boundary;
    if (typeof boundary !== "string") {
      throw new TypeError("Multipart: Boundary not found");
    }
    return (body, filesAsFiles, classes) =>
      parseMultipart(toBuffer(body), boundary, filesAsFiles, classes);
  }
  if (mediaType.type === "application" && mediaType.subtype === "x-www-form-urlencoded") {
    const charset = mediaType.params.charset ?? "utf8";
    return (body, _filesAsFiles, classes) => parseUrlencoded(toBuffer(body), charset, classes);
  }
  throw new TypeError(`Unsupported content type: ${contentType}`);
}

function toBuffer(array: Uint8Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}
