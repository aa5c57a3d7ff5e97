// Headless Chromium for the tests that need a real browser (live reload,
// error pages), driven through playwright-core. Uses Debian's chromium
// package rather than a browser downloaded by Playwright.
import fs from "node:fs";
import type { TestContext } from "node:test";
import type { Browser, Page } from "playwright-core";

/** Where Debian's chromium package installs the browser */
export const CHROMIUM_PATH = "/usr/bin/chromium";

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Launches headless Chromium; close it with `browser.close()`. Without the
 * browser the tests fail rather than skip: .ci/run installs it.
 */
export async function launchBrowser(): Promise<Browser> {
  if (!isExecutable(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} not found: apt-get install chromium (.ci/run does)`);
  }
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Tests run as root, where Chromium refuses to start sandboxed. The
    // machine's network is closed: without the background-networking flags
    // Chromium keeps trying (and failing) to reach Google's hosts
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 15_000,
  });
}

/** A fresh page in its own context, closed when the test ends */
export async function usePage(t: TestContext, browser: Browser): Promise<Page> {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(5_000);
  return page;
}
