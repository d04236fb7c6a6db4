// CSRF protection on the client side: the server puts its token in
// <meta name="csrf-token"> and expects it back in X-CSRF-Token on every
// non-form request. Plain HTML forms carry it in a hidden _csrf field instead.

/** The page's CSRF token, or '' when the page has none (logged out). */
export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
}

function sameOrigin(url) {
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

/** Adds the token to every htmx request to this origin. */
export function installCSRF(doc) {
  doc.addEventListener('htmx:configRequest', (evt) => {
    const token = csrfToken();
    if (token && sameOrigin(evt.detail.path)) {
      evt.detail.headers['X-CSRF-Token'] = token;
    }
  });
}

/**
 * fetch with the CSRF token and same-origin credentials. Use it for every
 * request the page scripts make so none is refused for a missing token.
 */
export function fetchWithCSRF(input, init = {}) {
  const headers = new Headers(init.headers);
  const url = input instanceof Request ? input.url : String(input);
  const token = csrfToken();
  if (token && sameOrigin(url) && !headers.has('X-CSRF-Token')) {
    headers.set('X-CSRF-Token', token);
  }
  return fetch(input, { credentials: 'same-origin', ...init, headers });
}
