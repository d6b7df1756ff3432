/**
 * End to end: `boxvm serve --demo` driven from Debian's Chromium through playwright-core.
 *
 * Opens the printed URL, powers the demo guest on, types `echo hello-from-browser` in the
 * terminal and waits for the guest's answer, suspends (state, buttons and a frozen console),
 * resumes, saves with the progress bar reaching 100 %, and keeps screenshots in artifacts/.
 * With BOXVM_E2E_DOCS=1 it also writes docs/web-console.png (the README's picture).
 *
 * Run: node test/e2e/run.mjs   (needs /usr/bin/chromium, or BOXVM_CHROMIUM=path)
 * The steps are separate tests, in order; each one that fails says what it waited for.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const ARTIFACTS = join(ROOT, "artifacts", "e2e");
const CHROMIUM = process.env["BOXVM_CHROMIUM"] ?? "/usr/bin/chromium";
/** How long a step may wait for the page or the guest before it fails (a bound, not a measurement). */
const STEP = Number(process.env["BOXVM_E2E_STEP_MS"] ?? 30_000);

let tmp = "";
let server: ChildProcess | null = null;
let serverLog = "";
let url = "";
let context: BrowserContext | null = null;
let page: Page;

/** What the page's script exposes (this file compiles without the DOM lib, so the shapes are spelled out). */
interface PageGlobals {
  boxvm: { text(): string };
}
/** The parts of a <button> read here. */
interface ButtonLike {
  disabled: boolean;
  dataset: Record<string, string | undefined>;
}

/** The terminal's text (xterm.js's buffer, through the page's window.boxvm.text()). */
function termText(p: Page = page): Promise<string> {
  return p.evaluate(() => (globalThis as unknown as PageGlobals).boxvm.text());
}

/** Waits until the terminal's text satisfies a regular expression. */
async function waitTerm(re: RegExp, what: string, p: Page = page): Promise<string> {
  try {
    await p.waitForFunction(
      ([src, flags]) => new RegExp(src, flags).test((globalThis as unknown as PageGlobals).boxvm.text()),
      [re.source, re.flags] as const,
      { timeout: STEP, polling: 100 },
    );
  } catch {
    assert.fail(`The terminal never showed ${what} (${String(re)}); it shows:\n${await termText(p)}`);
  }
  return termText(p);
}

async function waitState(state: string): Promise<void> {
  await page
    .locator("#state")
    .filter({ hasText: new RegExp(`^${state}$`) })
    .waitFor({ timeout: STEP });
}

async function enabledOps(): Promise<string[]> {
  return page.$$eval("button[data-op]", (bs) =>
    (bs as unknown as ButtonLike[]).filter((b) => !b.disabled).map((b) => b.dataset["op"] ?? ""),
  );
}

/** Waits until the buttons settle on the expected set (they are disabled while an operation is in flight). */
async function waitButtons(expected: string[]): Promise<void> {
  const deadline = Date.now() + STEP;
  let got: string[] = [];
  while (Date.now() < deadline) {
    got = await enabledOps();
    if (JSON.stringify(got) === JSON.stringify(expected)) return;
    await page.waitForTimeout(50);
  }
  assert.deepEqual(got, expected);
}

async function shot(name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, name) });
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `No Chromium at ${CHROMIUM} (apt-get install chromium, or set BOXVM_CHROMIUM)`);
  tmp = mkdtempSync(join(tmpdir(), "boxvm-e2e-"));
  server = spawn(
    process.execPath,
    [
      join(ROOT, "bin/boxvm.mjs"),
      "serve",
      "--demo",
      "--count",
      "2",
      "--port",
      "0",
      "--mem",
      "32",
      "--state-dir",
      join(tmp, "states"),
    ],
    { cwd: ROOT, env: { ...process.env, BOXVM_CACHE_DIR: join(tmp, "cache") }, stdio: ["ignore", "pipe", "pipe"] },
  );
  server.stderr?.on("data", (b: Buffer) => (serverLog += b.toString("utf8")));
  url = await new Promise<string>((res, rej) => {
    let out = "";
    server?.stdout?.on("data", (b: Buffer) => {
      out += b.toString("utf8");
      const m = /^(http:\/\/\S+\?token=[0-9a-f]+)$/m.exec(out);
      if (m?.[1]) res(m[1]);
    });
    server?.once("exit", (code) =>
      rej(new Error(`boxvm serve exited (${String(code)}) before printing its URL:\n${serverLog}`)),
    );
  });
  context = await chromium.launchPersistentContext(join(tmp, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 760 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => (serverLog += `\n[page error] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") serverLog += `\n[page error] console: ${m.text()}`;
  });
});

after(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server?.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("the page opens with the token; without it the server refuses", async () => {
  const bare = url.replace(/\?token=.*$/, "");
  const refused = await context!.request.get(`${bare}metrics`, { failOnStatusCode: false });
  assert.equal(refused.status(), 401);
  await page.goto(url);
  await waitState("CREATED");
  assert.deepEqual(await page.$$eval("#vm-list button", (bs) => bs.map((b) => b.textContent)), [
    "boxvm-1CREATED",
    "boxvm-2CREATED",
  ]);
  await waitButtons(["powerOn"]);
});

test("power on boots the guest: state RUNNING, its banner and prompt in the terminal", async () => {
  await page.click('button[data-op="powerOn"]');
  await waitState("RUNNING");
  await waitButtons(["suspend", "reset", "powerOff"]);
  await waitTerm(/boxvm demo guest[\s\S]*demo>\s*$/, "the demo guest's banner and prompt");
  // The statistics panel refreshes from STAM: the CPU has retired instructions.
  await page.locator('#stats tr[data-name="/CPU/Instructions"]').waitFor({ timeout: STEP });
  await shot("01-booted.png");
});

test("the VM list switches between VMs", async () => {
  await page.click('#vm-list button[data-vm="1"]');
  await page
    .locator("#vm-name")
    .filter({ hasText: /^boxvm-2$/ })
    .waitFor({ timeout: STEP });
  await waitState("CREATED");
  await waitButtons(["powerOn"]);
  assert.doesNotMatch(await termText(), /boxvm demo guest/);
  assert.deepEqual(await page.$$eval("#vm-list button", (bs) => bs.map((b) => b.textContent)), [
    "boxvm-1RUNNING",
    "boxvm-2CREATED",
  ]);
  await page.click('#vm-list button[data-vm="0"]');
  await page
    .locator("#vm-name")
    .filter({ hasText: /^boxvm-1$/ })
    .waitFor({ timeout: STEP });
  await waitState("RUNNING");
  await waitTerm(/boxvm demo guest[\s\S]*demo>\s*$/, "the first VM's console again");
});

test("a second tab sees the same console", async () => {
  const other = await context!.newPage();
  try {
    await other.goto(url);
    await waitTerm(/boxvm demo guest[\s\S]*demo>\s*$/, "the scrollback in a second tab", other);
  } finally {
    await other.close();
  }
});

test("typing `echo hello-from-browser` is echoed by the guest", async () => {
  await page.click("#terminal");
  await page.keyboard.type("echo hello-from-browser");
  await page.keyboard.press("Enter");
  // The typed line, the guest's answer on a line of its own, and a new prompt.
  await waitTerm(/demo> echo hello-from-browser\n+hello-from-browser\n+demo>\s*$/, "the guest's answer");
  await shot("02-echo.png");
});

test("suspend: the state and buttons change", async () => {
  await page.click('button[data-op="suspend"]');
  await waitState("SUSPENDED");
  await waitButtons(["resume", "reset", "save", "powerOff"]);
  assert.equal(await page.getAttribute("#terminal", "data-frozen"), "true");
  await page.click('button[data-op="resume"]');
  await waitState("RUNNING");
});

test("the console freezes while suspended and goes on after resume (the guest's count command)", async () => {
  await page.click("#terminal");
  await page.keyboard.type("count");
  await page.keyboard.press("Enter");
  await waitTerm(/count\n+1\n+2\n/, "count's first numbers");
  await page.click('button[data-op="suspend"]');
  await waitState("SUSPENDED");
  const frozen = await termText();
  await page.waitForTimeout(2000);
  assert.equal(await termText(), frozen, "the console changed while the VM was suspended");
  const last = Number(/(\d+)\s*$/.exec(frozen)?.[1]);
  await page.click('button[data-op="resume"]');
  await waitState("RUNNING");
  await waitTerm(new RegExp(`\\n${String(last + 1)}\\n`), `count going on after ${String(last)}`);
  await page.click("#terminal"); // the Resume button has the focus: type into the terminal again
  await page.keyboard.press("Enter"); // any key stops count
  await waitTerm(/demo>\s*$/, "the prompt after count");
});

test("save: the progress bar reaches 100 % and the VM is SUSPENDED again", async () => {
  if ((await page.textContent("#state")) === "RUNNING") {
    await page.click('button[data-op="suspend"]');
    await waitState("SUSPENDED");
  }
  await waitButtons(["resume", "reset", "save", "powerOff"]);
  await page.click('button[data-op="save"]');
  await page.locator('#progress[data-done="true"]').waitFor({ timeout: STEP });
  assert.equal(await page.getAttribute("#progress", "data-percent"), "100");
  assert.equal(await page.textContent("#progress-label"), "Saved");
  await waitState("SUSPENDED");
  // A saved state exists now: Load is offered.
  await waitButtons(["resume", "reset", "save", "load", "powerOff"]);
  await page.click('button[data-op="resume"]');
  await waitState("RUNNING");
  await page.waitForTimeout(1200); // lets the statistics panel refresh for the picture
  await shot("03-saved.png");
  if (process.env["BOXVM_E2E_DOCS"] === "1") await page.screenshot({ path: join(ROOT, "docs", "web-console.png") });
});

test("a damaged saved state: Load fails, the error report shows, only power off is left; then a new VM", async () => {
  const file = join(tmp, "states", "boxvm-1.sav");
  const bytes = readFileSync(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0xff;
  writeFileSync(file, bytes);
  await page.click('button[data-op="suspend"]');
  await waitState("SUSPENDED");
  await waitButtons(["resume", "reset", "save", "load", "powerOff"]);
  await page.click('button[data-op="load"]');
  await waitState("LOAD_FAILURE");
  await page.locator("#errors li").first().waitFor({ timeout: STEP });
  const report = (await page.textContent("#errors li")) ?? "";
  assert.match(report, /VERR_\w+/);
  assert.match(report, /boxvm-1\.sav/);
  assert.equal(await page.getAttribute("#progress", "data-done"), "true");
  assert.equal(await page.textContent("#progress-label"), "Load failed");
  await waitButtons(["powerOff"]);
  await shot("04-load-failure.png");
  await page.click('button[data-op="powerOff"]');
  await waitState("OFF");
  await waitButtons(["recreate"]);
  await page.click('button[data-op="recreate"]');
  await waitState("CREATED");
  await waitButtons(["powerOn", "load"]);
  await waitTerm(/a new VM from the same configuration/, "the note of the new VM");
});

test("no script errors on the page", () => {
  assert.doesNotMatch(serverLog, /\[page error\]/, serverLog);
});
