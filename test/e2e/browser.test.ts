// Negative control for test/support/browser.ts: the e2e suites assert "no problems", so show that
// each kind of problem is in fact caught.
import { expect } from 'chai';
import { TARGETS } from '../support/targets.ts';
import { serve, useBrowser, type ServedEnv } from '../support/browser.ts';
import { waitFor } from '../support/wait.ts';

describe('e2e: the browser helper', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  before(async () => {
    env = await serve(TARGETS[0]);
  });
  after(() => env?.close());

  it('reports CSP violations, page errors, failed requests and unexpected HTTP errors', async () => {
    const tab = await browser().newPage();
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/login`);
      tab.assertClean();
      await page.route('**/static/aborted.css', (r) => r.abort());
      await page.evaluate(`(() => {
        const s = document.createElement('script');
        s.textContent = 'window.inlineRan = true';
        document.head.appendChild(s);
        setTimeout(() => { throw new Error('boom from the page'); });
        return Promise.allSettled([fetch('/static/missing.css'), fetch('/static/aborted.css')]);
      })()`);
      await waitFor(() => Object.values(tab.problems).every((list) => list.length > 0), { message: 'every kind of problem to be reported' });
      expect(await page.evaluate('window.inlineRan')).to.equal(undefined);
      const p = tab.problems;
      expect(p.cspViolations.join('\n')).to.match(/script-src/);
      expect(p.pageErrors.join('\n')).to.include('boom from the page');
      expect(p.httpErrors.join('\n')).to.include('404 GET');
      expect(p.failedRequests.join('\n')).to.include('/static/aborted.css');
      expect(p.consoleErrors.join('\n')).to.include('404');
      expect(() => tab.assertClean()).to.throw(/problem/);
    } finally {
      await tab.close();
    }
  });

  it('lets a test declare the error responses it expects', async () => {
    const tab = await browser().newPage();
    try {
      tab.expectError({ status: 404, path: '/nobody-has-this-handle' });
      const res = await tab.page.goto(`${env.origin}/nobody-has-this-handle`);
      expect(res!.status()).to.equal(404);
      tab.assertClean();
      tab.expectError({ status: 404, path: '/never-visited' });
      expect(() => tab.assertClean()).to.throw(/never came/);
    } finally {
      await tab.close();
    }
  });
});
