/**
 * Headless Chromium for the e2e suites: one browser per suite (useBrowser), a fresh context per
 * page, and a record of everything that should never happen on our pages — console errors, uncaught
 * page errors, failed requests, unexpected HTTP errors and Content Security Policy violations.
 *
 * Debian's chromium is driven by playwright-core (never `npx playwright install`). Screenshots go to
 * /tmp/paylink-shots/ (outside the repo), where a person can look at them.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page, type Request as PwRequest } from 'playwright-core';
import { build, uniqueHandle, type BuildOptions, type TestEnv } from './harness.ts';
import { TARGETS, type Target } from './targets.ts';
import type { Merchant } from '../../src/features/merchants/index.ts';

export const CHROMIUM = process.env.PAYLINK_CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS_DIR = process.env.PAYLINK_SHOTS_DIR ?? path.join(os.tmpdir(), 'paylink-shots');

export const DESKTOP = { width: 1280, height: 800 } as const;
export const PHONE = { width: 390, height: 844 } as const;

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** A response the test expects to be an error (a 404 page, a 401 for a wrong password…). */
export interface ExpectedError {
  status: number;
  /** Matched against the URL's pathname (string = exact). */
  path: string | RegExp;
}

export interface Problems {
  consoleErrors: string[];
  pageErrors: string[];
  failedRequests: string[];
  httpErrors: string[];
  cspViolations: string[];
}

/** A page in its own context, and what went wrong on it. */
export class TrackedPage {
  readonly problems: Problems = { consoleErrors: [], pageErrors: [], failedRequests: [], httpErrors: [], cspViolations: [] };
  private expected: ExpectedError[] = [];
  /** URLs of expected error responses; Chromium logs "Failed to load resource" for them too. */
  private expectedUrls = new Set<string>();

  constructor(
    readonly context: BrowserContext,
    readonly page: Page,
  ) {}

  /** Declares that the next responses matching `e` are part of the story, not a failure. */
  expectError(...e: ExpectedError[]): void {
    this.expected.push(...e);
  }

  /** @internal */
  onResponse(url: string, status: number, method: string, type: string): void {
    if (status < 400) return;
    const { pathname } = new URL(url);
    const i = this.expected.findIndex((e) => e.status === status && (typeof e.path === 'string' ? e.path === pathname : e.path.test(pathname)));
    if (i >= 0) {
      this.expected.splice(i, 1);
      this.expectedUrls.add(url);
      return;
    }
    this.problems.httpErrors.push(`${status} ${method} ${url} (${type})`);
  }

  /** @internal */
  onConsole(type: string, text: string, url: string): void {
    if (/Content[- ]Security[- ]Policy/i.test(text)) {
      this.problems.cspViolations.push(text);
      return;
    }
    if (type !== 'error') return;
    if (/^Failed to load resource/.test(text) && this.expectedUrls.has(url)) return;
    this.problems.consoleErrors.push(url ? `${text} (${url})` : text);
  }

  /** Forgets what was seen so far (to reuse one page across tests). */
  reset(): void {
    for (const list of Object.values(this.problems)) list.length = 0;
    this.expected = [];
    this.expectedUrls.clear();
  }

  /** Everything that went wrong, as readable lines; empty when the page behaved. */
  all(): string[] {
    const p = this.problems;
    return [
      ...p.consoleErrors.map((s) => `console: ${s}`),
      ...p.pageErrors.map((s) => `page error: ${s}`),
      ...p.failedRequests.map((s) => `request failed: ${s}`),
      ...p.httpErrors.map((s) => `unexpected HTTP error: ${s}`),
      ...p.cspViolations.map((s) => `CSP: ${s}`),
      ...this.expected.map((e) => `expected ${e.status} for ${e.path} never came`),
    ];
  }

  /** Throws with every problem listed (so one failure shows them all). */
  assertClean(): void {
    const all = this.all();
    if (all.length) throw new Error(`the browser saw ${all.length} problem(s):\n  ${all.join('\n  ')}`);
  }

  async screenshot(name: string): Promise<string> {
    return screenshot(this.page, name);
  }

  close(): Promise<void> {
    return this.context.close();
  }
}

/** Writes a full-page PNG to SHOTS_DIR/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SHOTS_DIR, { recursive: true });
  const file = path.join(SHOTS_DIR, `${name.replace(/[^\w.-]+/g, '-')}.png`);
  // caret 'initial': hiding the caret puts style="" on inputs, which a later htmx swap copies over
  // (attributesToSettle) and the CSP rightly refuses — a violation the page itself never causes.
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'initial' });
  return file;
}

export class TestBrowser {
  private constructor(readonly browser: Browser) {}

  static async launch(): Promise<TestBrowser> {
    // A fresh profile every time: launch() makes a temp user-data dir and removes it on close.
    return new TestBrowser(await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS }));
  }

  /** A new context (own cookies) with one page whose problems are recorded from the first request. */
  async newPage(opts: BrowserContextOptions = {}): Promise<TrackedPage> {
    const context = await this.browser.newContext({ viewport: DESKTOP, ...opts });
    // How long an action or wait may take before it fails: a backstop for what never happens, sized
    // for a loaded CI machine (a busy runner took over 5 s to load a page), not a speed budget.
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    const tracked = new TrackedPage(context, page);
    page.on('console', (m) => tracked.onConsole(m.type(), m.text(), m.location().url));
    page.on('pageerror', (err) => tracked.problems.pageErrors.push(err.stack ?? String(err)));
    // Main-frame navigations so far, and how many had started when each request was sent: leaving a
    // page (reload, goto, a link) aborts what its document still had in flight, such as the fetch a
    // live update just started.
    let navigations = 0;
    const sentDuring = new WeakMap<PwRequest, number>();
    page.on('request', (r) => {
      if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations++;
      else sentDuring.set(r, navigations);
    });
    page.on('requestfailed', (r) => {
      const why = r.failure()?.errorText ?? 'failed';
      // A navigation that replaces a still-loading request aborts it, leaving a page closes its live
      // stream (SSE), whose response never ends, and aborts the requests of the page it left: none
      // is a failure of ours.
      if (why === 'net::ERR_ABORTED' && (r.resourceType() === 'document' || r.resourceType() === 'eventsource')) return;
      if (why === 'net::ERR_ABORTED' && (sentDuring.get(r) ?? navigations) < navigations) return;
      tracked.problems.failedRequests.push(`${r.method()} ${r.url()}: ${why}`);
    });
    page.on('response', (r) => tracked.onResponse(r.url(), r.status(), r.request().method(), r.request().resourceType()));
    if (opts.javaScriptEnabled !== false) {
      // securitypolicyviolation fires in the page; an init script runs outside the page's CSP.
      await page.exposeBinding('__paylinkCsp', (_src, text: string) => {
        tracked.problems.cspViolations.push(text);
      });
      await page.addInitScript(`document.addEventListener('securitypolicyviolation', (e) => {
        const where = e.target && e.target.outerHTML ? ' on ' + e.target.outerHTML.slice(0, 120) : '';
        window.__paylinkCsp(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + (e.sample ? ' "' + e.sample + '"' : '') + where + ' at ' + (e.sourceFile || location.href) + ':' + e.lineNumber);
      });`);
    }
    return tracked;
  }

  close(): Promise<void> {
    return this.browser.close();
  }
}

export const TEST_PASSWORD = 'correct horse battery';

/** Signs a merchant up through the real form and waits for the dashboard. */
export async function signUpInBrowser(page: Page, origin: string, f: { name: string; handle: string; password?: string }): Promise<{ email: string; password: string }> {
  const email = `${f.handle}@example.test`;
  const password = f.password ?? TEST_PASSWORD;
  await page.goto(`${origin}/signup`);
  await page.getByLabel('Business name').fill(f.name);
  await page.getByLabel('Handle').fill(f.handle);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(`${origin}/app`);
  return { email, password };
}

/** Launches Chromium once for the enclosing describe() and closes it after. */
/**
 * A served app (first target) with a merchant signed up through the real form in Chromium; its
 * `storageState` opens signed-in tabs. Call in a `before` (it needs the browser launched).
 */
export async function servedMerchant(browser: TestBrowser, f: { name: string; handlePrefix: string }, opts: BuildOptions = {}): Promise<{ env: ServedEnv; storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>; handle: string; merchant: Merchant }> {
  const env = await serve(TARGETS[0], opts);
  const handle = uniqueHandle(f.handlePrefix);
  const tab = await browser.newPage();
  await signUpInBrowser(tab.page, env.origin, { name: f.name, handle });
  const storageState = await tab.context.storageState();
  await tab.close();
  return { env, storageState, handle, merchant: (await env.rt.services.merchants.getByHandle(handle))! };
}

export function useBrowser(): () => TestBrowser {
  let b: TestBrowser | undefined;
  before(async function () {
    this.timeout(60_000);
    b = await TestBrowser.launch();
  });
  after(() => b?.close());
  return () => {
    if (!b) throw new Error('useBrowser(): the browser is not running (called outside a test?)');
    return b;
  };
}

export interface ServedEnv extends TestEnv {
  /** http://127.0.0.1:<port>, also the app's BASE_URL so public URLs on pages are real. */
  origin: string;
}

/**
 * build() served on a loopback port. The port is chosen first so BASE_URL can be the real origin
 * (links on pages then point somewhere the browser can go).
 */
export async function serve(target: Target, opts: BuildOptions = {}): Promise<ServedEnv> {
  const server = http.createServer();
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let env: TestEnv;
  try {
    env = await build(target, { ...opts, env: { BASE_URL: origin, ...opts.env } });
  } catch (err) {
    server.close();
    throw err;
  }
  server.on('request', env.app);
  return {
    ...env,
    origin,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await env.close();
    },
  };
}
