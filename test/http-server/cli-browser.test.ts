// End to end: the `miniflare` command with --live-reload, driven by a real
// browser. Edits to the worker must reload open pages, and a throwing worker
// must show the error page, which itself reloads once the worker is fixed.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchBrowser, usePage } from "../helpers/browser.js";
import { type Run, runBin, waitForOutput } from "../helpers/process.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

/** Starts `miniflare --live-reload` in `cwd`, resolving to its URL once listening */
async function startCLI(t: TestContext, cwd: string, args: string[]): Promise<{ run: Run; url: string }> {
  const run = runBin(t, [...args, "--live-reload", "--port", "0", "--no-update-check", "--no-cf-fetch"], cwd);
  const [, port] = await waitForOutput(run, /Listening on \S+:(\d+)/);
  return { run, url: `http://127.0.0.1:${port}/` };
}

/**
 * Opens `url`, resolving once the page's live-reload socket is open (so a
 * reload from then on can't be missed)
 */
async function openLive(page: Page, url: string): Promise<void> {
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    (window as any).WebSocket = class extends Native {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        this.addEventListener("open", () => ((window as any).__liveReloadOpen = true));
      }
    };
  });
  await page.goto(url);
  await page.waitForFunction(() => (window as any).__liveReloadOpen === true);
}

/** A service worker answering every request with an HTML page */
function htmlWorker(heading: string): string {
  return `addEventListener("fetch", (event) => {
  event.respondWith(new Response('<!DOCTYPE html><html><body><h1 id="heading">${heading}</h1></body></html>', {
    headers: { "Content-Type": "text/html; charset=utf-8" },
  }));
});
`;
}

describe("miniflare --live-reload in Chromium", () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  test("CLI: --live-reload: editing the worker reloads the open page", async (t) => {
    const tmp = await useTmp(t);
    await writeFiles(tmp, { "worker.js": htmlWorker("First version") });
    const { run, url } = await startCLI(t, tmp, ["worker.js"]);
    const page = await usePage(t, browser);
    await openLive(page, url);
    assert.equal(await page.locator("#heading").innerText(), "First version");
    await page.evaluate(() => ((window as any).marker = true));

    await fs.writeFile(path.join(tmp, "worker.js"), htmlWorker("Second, edited version"));
    try {
      await page.waitForFunction(
        () => document.getElementById("heading")?.textContent === "Second, edited version",
        undefined,
        { timeout: 20_000 }
      );
    } catch (e) {
      // What the command saw and what the page shows say where it stopped
      const heading = await page.locator("body").innerText().catch(() => "(unreadable)");
      throw new Error(`The page didn't reload: it shows ${JSON.stringify(heading)}\nCommand output:\n${run.output()}`, { cause: e });
    }
    // A real reload: the page's globals are gone
    assert.equal(await page.evaluate(() => (window as any).marker), undefined);
    assert.match(run.output(), /Worker reloaded!/);
  });

  test("CLI: --live-reload: a throwing worker shows the error page, which reloads once fixed", async (t) => {
    const tmp = await useTmp(t);
    await writeFiles(tmp, {
      "worker.mjs": `export default {
  fetch() {
    throw new Error("Something broke in the worker");
  },
};
`,
    });
    const { run, url } = await startCLI(t, tmp, ["--modules", "worker.mjs"]);
    const page = await usePage(t, browser);
    const response = await page.goto(url);
    assert.equal(response?.status(), 500);
    const message = page.getByText("Something broke in the worker", { exact: true });
    assert.equal(await message.isVisible(), true);
    // The stack points at the worker's file
    assert.equal(await page.getByText(/worker\.mjs/).first().isVisible(), true);
    assert.equal(await page.getByRole("link", { name: /Miniflare Docs/ }).isVisible(), true);
    await waitForOutput(run, /GET \/: Error: Something broke in the worker/);

    // The page has live reload too: fixing the worker brings the page back
    assert((await page.content()).includes("/cdn-cgi/mf/reload"));
    await openLive(page, url);
    await fs.writeFile(
      path.join(tmp, "worker.mjs"),
      `export default {
  fetch: () => new Response('<h1 id="heading">Fixed now</h1>', { headers: { "Content-Type": "text/html" } }),
};
`
    );
    await page.waitForFunction(() => document.getElementById("heading")?.textContent === "Fixed now", undefined, {
      timeout: 10_000,
    });
  });
});
