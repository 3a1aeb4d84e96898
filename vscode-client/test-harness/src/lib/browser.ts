// Headless Debian Chromium driven by playwright-core (no browser download).
import * as fs from "fs";
import * as path from "path";
import { Browser, chromium, Page } from "playwright-core";
import { CHROMIUM } from "./env";

export async function launchBrowser(dir: string): Promise<Browser> {
  const profile = path.join(dir, "chromium-profile");
  fs.mkdirSync(profile, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // The machine has no outside network: background fetches only produce refused connections.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    timeout: 60_000,
  });
}

export async function newPage(browser: Browser): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  return ctx.newPage();
}
