// Light/dark theme: the system preference unless the user chose one with the
// toggle, in which case the choice is kept in localStorage.
//
// The CSS follows prefers-color-scheme on its own; data-theme on <html> is set
// only for an explicit choice, so a page without JavaScript still honours the
// system setting.

const storageKey = 'fieldhub.theme';
const darkQuery = '(prefers-color-scheme: dark)';

/** Event fired on document whenever the effective theme may have changed. */
export const themeChangeEvent = 'fieldhub:themechange';

/** The theme the user chose with the toggle, or null to follow the system. */
export function savedTheme() {
  try {
    const v = localStorage.getItem(storageKey);
    return v === 'light' || v === 'dark' ? v : null;
  } catch {
    // Storage can be disabled (privacy settings); fall back to the system.
    return null;
  }
}

/** The theme in effect: the saved choice, else the system preference. */
export function currentTheme() {
  return savedTheme() ?? (matchMedia(darkQuery).matches ? 'dark' : 'light');
}

/** Sets data-theme on <html> for an explicit choice, or removes it. */
export function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === 'light' || theme === 'dark') {
    root.dataset.theme = theme;
  } else {
    delete root.dataset.theme;
  }
}

function saveTheme(theme) {
  try {
    localStorage.setItem(storageKey, theme);
  } catch {
    // Not persisted, but still applied for this page.
  }
}

function syncToggles(doc) {
  const dark = currentTheme() === 'dark';
  for (const btn of doc.querySelectorAll('[data-theme-toggle]')) {
    btn.setAttribute('aria-pressed', String(dark));
    btn.title = dark ? 'Switch to light theme' : 'Switch to dark theme';
  }
}

/**
 * Wires every [data-theme-toggle] button (rendered hidden, since it needs
 * JavaScript) and re-announces theme changes, including system ones.
 */
export function initTheme(doc) {
  applyTheme(savedTheme());
  for (const btn of doc.querySelectorAll('[data-theme-toggle]')) {
    btn.hidden = false;
    btn.addEventListener('click', () => {
      const next = currentTheme() === 'dark' ? 'light' : 'dark';
      saveTheme(next);
      applyTheme(next);
      syncToggles(doc);
      doc.dispatchEvent(new CustomEvent(themeChangeEvent, { detail: { theme: next } }));
    });
  }
  matchMedia(darkQuery).addEventListener('change', () => {
    if (savedTheme() !== null) return;
    syncToggles(doc);
    doc.dispatchEvent(new CustomEvent(themeChangeEvent, { detail: { theme: currentTheme() } }));
  });
  syncToggles(doc);
}
