/**
 * axe-core in a test page: the accessibility rules a person would run with the axe browser
 * extension, injected through the DevTools protocol (not a <script>, so the page's CSP is untouched).
 */
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

const source: string = createRequire(import.meta.url)('axe-core').source;

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; html: string }[];
}

/**
 * The violations of at least `min` impact (serious and critical by default) on the page as it is
 * now, one readable line each ("scrollable-region-focusable (serious): … at .table-wrap").
 */
export async function axeProblems(page: Page, min: 'minor' | 'moderate' | 'serious' | 'critical' = 'serious'): Promise<string[]> {
  const order = ['minor', 'moderate', 'serious', 'critical'];
  if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(source);
  const violations = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, html: n.html })) })))`)) as AxeViolation[];
  return violations
    .filter((v) => order.indexOf(v.impact ?? 'minor') >= order.indexOf(min))
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => `${n.target.join(' ')} ${n.html.slice(0, 100)}`).join(' | ')}`);
}
