// Builds the dashboard's browser assets from web/ into static/.
//
// The output is committed and embedded into the Go binary, and `make test`
// rebuilds it to check the tree is current, so it must be byte-for-byte
// deterministic: no timestamps, no source maps with absolute paths.
import * as esbuild from 'esbuild';

await esbuild.build({
  // app.js and app.css share a name but not an extension, so they can be
  // separate entry points; theme-init.js is tiny and loaded before paint.
  entryPoints: ['web/app.js', 'web/app.css', 'web/theme-init.js'],
  outdir: 'static',
  entryNames: '[name]',
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome109', 'firefox115', 'safari16'],
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
});
