// Vite builds the dashboard into dist/, which every MiniTrue node serves at `/`.
// JSX in .jsx files is compiled by Vite's built-in transformer (no React plugin needed).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic' } },
  build: { outDir: 'dist', emptyOutDir: true },
  server: { port: 5173 },
  test: { include: ['src/**/*.test.js'], environment: 'node' },
});
