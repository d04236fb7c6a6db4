// Tabs (WAI-ARIA tabs pattern) over panels that work without scripts: the
// server renders every panel and the tabs as links to them; this shows one
// panel at a time. The panel's id is the URL's fragment, so a tab can be
// linked to (/devices/x#twin) and the browser's back button returns to the
// tab before. A fragment naming an element inside a panel opens that panel.
// Arrow keys, Home and End move between tabs; the tab chosen is shown at
// once (automatic activation).

export function initTabs(doc) {
  for (const list of doc.querySelectorAll('[role="tablist"][data-tabs]')) setUp(doc, list);
}

function setUp(doc, list) {
  const tabs = [...list.querySelectorAll('[role="tab"]')];
  const panelOf = (tab) => doc.getElementById(tab.getAttribute('aria-controls'));
  const tabs_ = tabs.filter(panelOf);
  if (tabs_.length === 0) return;

  const select = (tab, { focus = false } = {}) => {
    for (const t of tabs_) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      panelOf(t).hidden = !on;
    }
    if (focus) tab.focus();
    doc.dispatchEvent(new CustomEvent('tabs:shown', { detail: { id: tab.getAttribute('aria-controls') } }));
  };

  // The tab whose panel is, or holds, the fragment's element.
  const fromHash = () => {
    const id = decodeURIComponent(doc.defaultView.location.hash.slice(1));
    if (!id) return null;
    const target = doc.getElementById(id);
    if (!target) return null;
    return tabs_.find((t) => panelOf(t).contains(target)) ?? null;
  };

  list.addEventListener('click', (evt) => {
    const tab = evt.target.closest('[role="tab"]');
    if (!tab || !tabs_.includes(tab)) return;
    evt.preventDefault();
    select(tab);
    // A new history entry, without the jump to the anchor.
    doc.defaultView.history.pushState(null, '', `#${tab.getAttribute('aria-controls')}`);
  });
  list.addEventListener('keydown', (evt) => {
    const i = tabs_.indexOf(evt.target);
    if (i < 0) return;
    let next;
    if (evt.key === 'ArrowRight') next = tabs_[(i + 1) % tabs_.length];
    else if (evt.key === 'ArrowLeft') next = tabs_[(i - 1 + tabs_.length) % tabs_.length];
    else if (evt.key === 'Home') next = tabs_[0];
    else if (evt.key === 'End') next = tabs_[tabs_.length - 1];
    else if (evt.key === ' ' || evt.key === 'Enter') next = tabs_[i];
    if (!next) return;
    evt.preventDefault();
    select(next, { focus: true });
    doc.defaultView.history.replaceState(null, '', `#${next.getAttribute('aria-controls')}`);
  });
  doc.defaultView.addEventListener('hashchange', () => {
    const tab = fromHash();
    if (tab) select(tab);
  });
  doc.defaultView.addEventListener('popstate', () => select(fromHash() ?? tabs_[0]));

  const initial = fromHash();
  select(initial ?? tabs_[0]);
  if (initial) {
    // A link to a tab keeps the page's header in view; a link to an
    // element inside a panel (#connection-string) scrolls to it.
    const target = doc.getElementById(decodeURIComponent(doc.defaultView.location.hash.slice(1)));
    const place = () => (target === panelOf(initial) ? doc.defaultView.scrollTo(0, 0) : target?.scrollIntoView());
    place();
    // The browser scrolls to the fragment once the page has loaded, too.
    if (doc.readyState !== 'complete') doc.defaultView.addEventListener('load', place, { once: true });
  }
}
