import { defineConfig } from 'vite';

// Built by `npm run build` as `vite build web`: this folder is the root, output goes to dist/web,
// hashed assets to /static/ (Shelf's /assets/ belongs to the Library API's config).
export default defineConfig({
  base: '/',
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    assetsDir: 'static',
    target: 'es2022',
  },
  // `npx vite web` for development: the UI with live reload, its API calls to a local Shelf.
  server: { proxy: { '/api': 'http://127.0.0.1:8080', '/v1': 'http://127.0.0.1:8080' } },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});
