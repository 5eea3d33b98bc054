// Page checks shared by the browser suites (run with page.evaluate).

/** Layout and accessibility facts that hold on every page, measured in the page. */
export const AUDIT = `(() => {
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length) && getComputedStyle(el).visibility !== 'hidden';
  const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.getAttribute('title') || el.value || '').trim();
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) problems.push('scrolls sideways: ' + doc.scrollWidth + 'px wide in a ' + window.innerWidth + 'px window');
  const h1s = document.querySelectorAll('h1').length;
  if (h1s !== 1) problems.push(h1s + ' h1 elements');
  if (document.querySelectorAll('main').length !== 1) problems.push('not exactly one <main>');
  if (!document.title.trim()) problems.push('no <title>');
  if (!doc.lang) problems.push('no lang on <html>');
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!el.labels?.length && !el.getAttribute('aria-label')) problems.push('unlabelled ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('a[href], button')) {
    if (visible(el) && !name(el)) problems.push('nameless ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('[aria-describedby]')) {
    for (const id of el.getAttribute('aria-describedby').split(/\\s+/)) if (!document.getElementById(id)) problems.push('aria-describedby to missing #' + id);
  }
  const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
  const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (dup.length) problems.push('duplicate ids: ' + dup.join(', '));
  // A table stacked into label/value lines on a phone: a label squeezed narrower than its longest
  // word breaks it mid-letter ("Prob / lem").
  const ctx = document.createElement('canvas').getContext('2d');
  for (const td of document.querySelectorAll('.table.stack td[data-label]')) {
    const s = getComputedStyle(td, '::before');
    if (!visible(td) || !td.dataset.label || s.content === 'none' || s.display === 'none' || !/px$/.test(s.width)) continue;
    ctx.font = s.fontStyle + ' ' + s.fontWeight + ' ' + s.fontSize + ' ' + s.fontFamily;
    const longest = Math.max(...td.dataset.label.split(/\s+/).map((w) => ctx.measureText(w).width));
    if (parseFloat(s.width) + 1 < longest) problems.push('label broken mid-word: ' + td.dataset.label + ' (' + s.width + ' for ' + Math.ceil(longest) + 'px)');
  }
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select')) {
    if (!visible(el) || el.closest('.sr-only, .skip')) continue;
    const r = el.getBoundingClientRect();
    if (r.right > window.innerWidth + 1) problems.push('off screen to the right: ' + el.outerHTML.slice(0, 80));
  }
  return problems;
})()`;
