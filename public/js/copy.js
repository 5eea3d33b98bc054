// Copy buttons: <button type="button" class="js-only" data-copy="text">. Loaded with defer on every
// dashboard page; one listener on the document also serves content htmx swaps in later. Without
// JavaScript the buttons stay hidden (.js-only) and the text stays selectable.
(() => {
  document.documentElement.classList.add('js');

  const copyText = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // No async clipboard (plain http on another host): the older way.
      const area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'sr-only';
      document.body.appendChild(area);
      area.select();
      let ok = false;
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
      area.remove();
      return ok;
    }
  };

  document.addEventListener('click', async (event) => {
    const button = event.target instanceof Element ? event.target.closest('[data-copy]') : null;
    if (!button) return;
    const label = button.dataset.label || button.innerHTML;
    button.dataset.label = label;
    const ok = await copyText(button.dataset.copy || '');
    button.textContent = ok ? 'Copied' : 'Press Ctrl+C';
    button.classList.toggle('copied', ok);
    clearTimeout(Number(button.dataset.timer));
    button.dataset.timer = String(setTimeout(() => {
      button.innerHTML = label;
      button.classList.remove('copied');
    }, 2000));
  });
})();
