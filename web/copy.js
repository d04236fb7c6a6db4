// Copy buttons: <button data-copy-target="ID"> copies the text of element ID.
// Delegated, so buttons swapped in by htmx work too.

async function copyText(text, source) {
  try {
    // The Clipboard API exists only in secure contexts (https, localhost).
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Plain-http deployments: select the text so the user can press Ctrl+C,
    // and try the legacy command.
    const range = document.createRange();
    range.selectNodeContents(source);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    return document.execCommand?.('copy') ?? false;
  }
}

export function initCopy(doc) {
  doc.addEventListener('click', async (evt) => {
    const btn = evt.target.closest?.('[data-copy-target]');
    if (!btn) return;
    const source = doc.getElementById(btn.dataset.copyTarget);
    if (!source) return;
    const ok = await copyText(source.textContent.trim(), source);
    const label = btn.dataset.label ?? btn.textContent;
    btn.dataset.label = label;
    btn.textContent = ok ? 'Copied' : 'Press Ctrl+C';
    setTimeout(() => {
      btn.textContent = label;
    }, 2000);
  });
}
