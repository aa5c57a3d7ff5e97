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

/** Why browser tests are skipped, or false if Chromium is available */
export const browserSkipReason: string | false = isExecutable(CHROMIUM_PATH)
  ? false
  : `${CHROMIUM_PATH} not found (apt-get install chromium)`;

/** Launches headless Chromium; close it with `browser.close()` */
export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Tests run as root, where Chromium refuses to start sandboxed
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
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
