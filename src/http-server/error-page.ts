/**
 * The response to a request whose worker threw: a Youch error page for
 * browsers, the bare stack for everything else (curl, fetch, scripts).
 * Stacks are used as they are: when the CLI runs, source-map-support has
 * already mapped them back to the sources.
 */
import type http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { LIVE_RELOAD_SCRIPT } from "./live-reload.js";

export interface ErrorPageRequest {
  method?: string;
  url?: string;
  /** A Fetch `Headers`, or Node's incoming headers */
  headers: Headers | http.IncomingHttpHeaders;
}

export interface ErrorPageOptions {
  /** Include the live-reload script, so the page reloads with the worker */
  liveReload?: boolean;
  /** That script, for the worker's current version (LiveReloadServer#script) */
  liveReloadScript?: string;
}

export interface ErrorPageResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

// Shown in the page's header, as in Miniflare 2
const LINKS = [
  { href: "https://developers.cloudflare.com/workers/", label: "📚 Workers Docs" },
  { href: "https://discord.gg/cloudflaredev", label: "💬 Workers Discord" },
  { href: "https://miniflare.dev", label: "🔥 Miniflare Docs" },
];

const LINKS_STYLES = `
#header { display: flex; align-items: center; justify-content: space-between; gap: 16px; }
#mf-links { display: flex; flex-wrap: wrap; gap: 16px; }
#mf-links a { text-decoration: none; color: inherit; font-weight: 500; }
#mf-links a:hover { text-decoration: underline; }
`;

function headerValue(headers: ErrorPageRequest["headers"], name: string): string {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? "";
  }
  const value = (headers as http.IncomingHttpHeaders)[name];
  return Array.isArray(value) ? value.join(", ") : (value ?? "");
}

function headersRecord(headers: ErrorPageRequest["headers"]): Record<string, string | string[] | undefined> {
  if (typeof (headers as Headers).get === "function") {
    return Object.fromEntries((headers as Headers).entries());
  }
  return headers as http.IncomingHttpHeaders;
}

/**
 * Whether the client looks like a browser: it accepts HTML (or anything)
 * and isn't curl, which sends `Accept: *\/*` but wants a readable stack.
 * @internal
 */
export function _wantsErrorPage(headers: ErrorPageRequest["headers"]): boolean {
  const accept = headerValue(headers, "accept").toLowerCase();
  const userAgent = headerValue(headers, "user-agent").toLowerCase();
  // (Miniflare 2 looks for "curl/" anywhere in the User-Agent)
  if (userAgent.includes("curl/")) return false;
  return accept.includes("text/html") || accept.includes("*/*") || accept.includes("text/*");
}

/** The plain-text form of anything thrown: its stack if it has one @internal */
export function _errorText(error: unknown): string {
  const stack = (error as { stack?: unknown } | null | undefined)?.stack;
  if (typeof stack === "string") return stack;
  if (typeof error === "object" && error !== null && "message" in error) {
    const { name, message } = error as { name?: unknown; message?: unknown };
    return `${typeof name === "string" ? name : "Error"}: ${String(message)}`;
  }
  return String(error);
}

function escapeHtml(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/**
 * The folder Miniflare's own code runs from, if known: the one below its
 * package's dist (`dist/bundle/`, or `dist/src/` in this repository)
 */
const OWN_CODE = ((): string | undefined => {
  const file = fileURLToPath(import.meta.url);
  const marker = `${path.sep}dist${path.sep}`;
  const at = file.lastIndexOf(marker);
  if (at === -1) return undefined;
  const end = file.indexOf(path.sep, at + marker.length);
  return end === -1 ? undefined : file.slice(0, end + 1);
})();

/**
 * `error` as the page shows it: without the stack frames of Miniflare's own
 * code, as Miniflare 2's page did, so the worker's frames come first. The
 * error itself is left whole (the log prints all of it). @internal
 */
export function _withoutOwnFrames(error: unknown, ownCode = OWN_CODE): unknown {
  const stack = (error as { stack?: unknown } | null | undefined)?.stack;
  if (typeof stack !== "string" || ownCode === undefined) return error;
  const lines = stack.split("\n");
  const kept = lines.filter((line) => !(/^\s+at /.test(line) && line.includes(ownCode)));
  if (kept.length === lines.length) return error;
  // (inherits the message, name and cause: a view, not a copy)
  return Object.create(error as object, {
    stack: { value: kept.join("\n"), configurable: true, writable: true, enumerable: false },
  });
}

/** Renders the Youch page, with Miniflare's links in its header */
async function renderErrorPage(thrown: unknown, request: ErrorPageRequest): Promise<string> {
  const error = _withoutOwnFrames(thrown);
  // Loaded on first use: most runs never render an error page
  const [{ Youch }, { Header }] = await Promise.all([
    import("youch"),
    import("youch/templates/header"),
  ]);
  const links = LINKS.map(
    ({ href, label }) => `<a href="${href}" target="_blank" rel="noopener">${label}</a>`
  ).join("");
  const nav = `<nav id="mf-links">${links}</nav>`;

  class LinksHeader extends Header {
    override async toHTML(): Promise<string> {
      const html = await super.toHTML();
      const opening = '<header id="header">';
      return html.includes(opening) ? html.replace(opening, opening + nav) : nav + html;
    }
  }

  const youch = new Youch();
  youch.templates.use("header", new LinksHeader(false));
  youch.templates.injectStyles(LINKS_STYLES);
  // Youch renders an error's `hint`/`help` as HTML, which is fine for its own
  // hints but not for properties of whatever the worker threw
  youch.useTransformer((parsed, normalized) => {
    if (normalized === error && parsed.hint !== undefined) parsed.hint = escapeHtml(parsed.hint);
  });
  return youch.toHTML(error, {
    request: {
      method: request.method,
      url: request.url,
      headers: headersRecord(request.headers),
    },
  });
}

/**
 * The 500 response for a request whose worker threw `error`: an HTML error
 * page if the client looks like a browser (see `_wantsErrorPage`), else the
 * plain stack. With `liveReload`, the page reloads when the worker does, so
 * fixing the error brings the page back by itself.
 */
export async function errorResponse(
  error: unknown,
  request: ErrorPageRequest,
  options: ErrorPageOptions = {}
): Promise<ErrorPageResponse> {
  if (_wantsErrorPage(request.headers)) {
    try {
      let body = await renderErrorPage(error, request);
      if (options.liveReload) {
        const script = options.liveReloadScript ?? LIVE_RELOAD_SCRIPT;
        const end = body.lastIndexOf("</body>");
        body = end === -1 ? body + script : body.slice(0, end) + script + body.slice(end);
      }
      return { status: 500, headers: { "Content-Type": "text/html; charset=UTF-8" }, body };
    } catch {
      // Rendering failed (odd error object?): the stack still helps
    }
  }
  return {
    status: 500,
    headers: { "Content-Type": "text/plain; charset=UTF-8" },
    body: _errorText(error),
  };
}
