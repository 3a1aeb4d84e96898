// Small helpers over the VS Code workbench DOM (selectors measured on code-server 4.139.1).
import { Locator, Page } from "playwright-core";

export const norm = (s: string): string => s.replace(/\u00a0/g, " ").replace(/\s+/g, " ").trim();

export async function waitForWorkbench(page: Page): Promise<void> {
  await page.locator(".monaco-workbench .part.statusbar").waitFor({ timeout: 90_000 });
}

/** The Tether status-bar entry (found by its accessibility label, which starts with "Tether"). */
export function tetherStatusItem(page: Page): Locator {
  return page.locator('.part.statusbar .statusbar-item[aria-label^="Tether"], .part.statusbar .statusbar-item:has([aria-label^="Tether"])').first();
}

export async function statusItemText(page: Page): Promise<string> {
  return norm(await tetherStatusItem(page).innerText());
}

export const quickInput = (page: Page): Locator => page.locator(".quick-input-widget");
export const quickInputBox = (page: Page): Locator => page.locator(".quick-input-widget .quick-input-box input");
export const quickRows = (page: Page): Locator => page.locator(".quick-input-widget .quick-input-list .monaco-list-row");

export async function focusWorkbench(page: Page): Promise<void> {
  await page.locator(".monaco-workbench .part.statusbar").click({ position: { x: 5, y: 5 } }).catch(() => undefined);
}

/** Runs a command from the command palette by its full title ("Tether: Checkpoint now"). */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press("F1");
  const input = quickInputBox(page);
  await input.waitFor({ state: "visible", timeout: 10_000 });
  await input.fill(`>${title}`);
  const row = quickRows(page).filter({ hasText: title }).first();
  await row.waitFor({ timeout: 15_000 });
  // The row with this title, not the first one: fuzzy matching may rank another command first
  // ("Track this folder" also matches "Stop tracking this folder").
  await row.click();
}

/** Quick Open (Ctrl+P) a workspace file by name. */
export async function openFile(page: Page, name: string): Promise<void> {
  await page.keyboard.press("Control+P");
  const input = quickInputBox(page);
  await input.waitFor({ state: "visible", timeout: 10_000 });
  await input.fill(name);
  await quickRows(page).filter({ hasText: name }).first().waitFor({ timeout: 15_000 });
  await input.press("Enter");
  await page.locator(".tabs-container .tab.active", { hasText: name }).waitFor({ timeout: 15_000 });
  await focusEditor(page);
}

/** Keys typed before the editor has focus go elsewhere: wait for (or give) focus first. */
export async function focusEditor(page: Page): Promise<void> {
  const focused = page.locator(".editor-group-container.active .monaco-editor.focused");
  if (await focused.waitFor({ timeout: 2_000 }).then(() => true, () => false)) {
    return;
  }
  await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().click();
  await focused.waitFor({ timeout: 10_000 });
}

export function tab(page: Page, name: string): Locator {
  return page.locator(".tabs-container .tab", { hasText: name }).first();
}

/** Text of the editor in the active group (from the DOM; fine for short files). */
export async function activeEditorText(page: Page): Promise<string> {
  const lines = page.locator(".editor-group-container.active .monaco-editor .view-lines").first();
  return (await lines.innerText()).replace(/\u00a0/g, " ");
}

export function toast(page: Page, text: string | RegExp): Locator {
  return page.locator(".notifications-toasts .notification-toast", { hasText: text }).first();
}

export async function escapeQuickInput(page: Page): Promise<void> {
  if (await quickInput(page).isVisible().catch(() => false)) {
    await page.keyboard.press("Escape");
  }
}
