/**
 * Debian's Chromium for browser tests, driven by playwright-core (browsers cannot be downloaded
 * here). Without it a browser test is skipped with a message — except under `CI=true`, where it
 * fails instead.
 *
 * @module
 */
import { type Browser, chromium } from "playwright-core";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const IN_CI = Deno.env.get("CI") === "true";

function chromiumProblem(): string | undefined {
  try {
    if (Deno.statSync(CHROMIUM).isFile) return undefined;
  } catch { /* reported below */ }
  return `No Chromium at "${CHROMIUM}" (apt-get install -y chromium, or set CHROMIUM_PATH)`;
}
const NO_CHROMIUM = chromiumProblem();

/** Whether browser tests are skipped: no Chromium, and not in CI. Warns once per test file. */
export function skipBrowser(testFile: string): boolean {
  const skip = NO_CHROMIUM !== undefined && !IN_CI;
  if (skip) console.warn(`${testFile}: skipping the browser tests: ${NO_CHROMIUM}`);
  return skip;
}

/** Starts headless Chromium; throws (fails the test) when there is none. */
export async function launchBrowser(): Promise<Browser> {
  if (NO_CHROMIUM) throw new Error(`${NO_CHROMIUM}; CI=true, so this fails instead of skipping`);
  return await chromium.launch({ executablePath: CHROMIUM, headless: true });
}
