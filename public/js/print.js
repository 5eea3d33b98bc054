// Print buttons on customer pages: <button type="button" class="js-only" data-print>. Without
// JavaScript the button stays hidden (.js-only) and the browser's own Print still uses the print stylesheet.
(() => {
  document.documentElement.classList.add('js');
  document.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('[data-print]') : null;
    if (button) window.print();
  });
})();
