// Dropdown panels (<details class="dropdown">) work without JavaScript; this
// adds what users expect of a menu: the first field gets focus on open, and
// Escape or a click outside closes it.

function close(details, refocus) {
  details.open = false;
  if (refocus) details.querySelector('summary')?.focus();
}

export function initDisclosures(doc) {
  for (const details of doc.querySelectorAll('details.dropdown')) {
    details.addEventListener('toggle', () => {
      if (details.open) details.querySelector('input:not([type="hidden"]), select, textarea')?.focus();
    });
  }
  doc.addEventListener('keydown', (evt) => {
    if (evt.key !== 'Escape') return;
    const open = evt.target.closest?.('details[open]') ?? doc.querySelector('details.dropdown[open]');
    if (open) close(open, true);
  });
  doc.addEventListener('click', (evt) => {
    for (const details of doc.querySelectorAll('details.dropdown[open]')) {
      if (!details.contains(evt.target)) close(details, false);
    }
  });
}
