/**
 * The response to a request whose worker threw: a Youch error page for
 * browsers, the bare stack for everything else (curl, fetch, scripts).
 * Stacks are used as they are: when the CLI runs, source-map-support has
 * already mapped them back to the sources.
 */
import type http from "node:http";
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

/** Renders the Youch page, with Miniflare's links in its header */
async function renderErrorPage(error: unknown, request: ErrorPageRequest): Promise<string> {
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
        const end = body.lastIndexOf("</body>");
        body = end === -1 ? body + LIVE_RELOAD_SCRIPT : body.slice(0, end) + LIVE_RELOAD_SCRIPT + body.slice(end);
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
