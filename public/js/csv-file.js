// The CSV import's file chooser: <input type="file" data-csv-into="<textarea id>"> reads the chosen
// file in the browser and puts its text into the textarea, which the form posts as ordinary text
// (no upload endpoint, no multipart parser). Without JavaScript the chooser stays hidden and people
// paste the text instead.
(() => {
  const setup = () => {
    for (const input of document.querySelectorAll('input[type="file"][data-csv-into]')) {
      if (input.dataset.ready) continue;
      input.dataset.ready = '1';
      const field = input.closest('[hidden]');
      if (field) field.hidden = false;
      const error = document.getElementById(input.id + '-error');
      input.addEventListener('change', async () => {
        const file = input.files && input.files[0];
        const target = document.getElementById(input.dataset.csvInto);
        if (!file || !target) return;
        const max = Number(input.dataset.maxBytes) || Infinity;
        if (error) error.textContent = '';
        if (file.size > max) {
          if (error) error.textContent = `“${file.name}” is larger than ${Math.round(max / 1048576)} MB. Split it into smaller files.`;
          input.value = '';
          return;
        }
        target.value = await file.text();
        target.focus();
      });
    }
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', setup);
  else setup();
})();
