// Copy buttons, the countdown, and the live tracker (server-sent events). The page works without it.
for (const b of document.querySelectorAll('.js-only')) b.hidden = false;
for (const b of document.querySelectorAll('[data-copy]')) {
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(b.dataset.copy);
      const t = b.firstChild.textContent;
      b.firstChild.textContent = 'Copied';
      setTimeout(() => (b.firstChild.textContent = t), 1500);
    } catch {}
  });
}
const cd = document.querySelector('[data-seconds]');
if (cd) {
  // From the seconds the server counted (the phone's clock may be wrong), not from an absolute time.
  const end = Date.now() + Number(cd.dataset.seconds) * 1000;
  const tick = () => {
    const s = Math.max(0, Math.round((end - Date.now()) / 1000));
    cd.textContent = s ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}` : 'Time is up';
  };
  tick();
  setInterval(tick, 1000);
}
const tr = document.getElementById('tracker');
// Only while the checkout is open: a decided one does not change (and its page says what the merchant decided).
if (tr && tr.dataset.events && window.EventSource) {
  const es = new EventSource(tr.dataset.events);
  let first = true;
  es.addEventListener('tracker', (e) => {
    if (!first && /cx-status (ok|warn)/.test(e.data) && !/Partly/.test(e.data)) location.reload();
    first = false;
    tr.innerHTML = e.data;
  });
}
