// Loaded synchronously in <head>: applies a saved theme before first paint so
// a user who chose dark never sees a white flash. Everything else waits for
// app.js.
import { applyTheme, savedTheme } from './theme.js';

applyTheme(savedTheme());
