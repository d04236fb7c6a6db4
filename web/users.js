// Users page. A new API token's secret is shown once, on the answer to the
// form's POST (/tokens); the address goes back to /users so that a reload
// shows the page instead of offering to create another token.

export function initUsers(doc) {
  if (doc.querySelector('[data-new-token]') && location.pathname !== '/users') {
    history.replaceState(history.state, '', '/users');
  }
}
