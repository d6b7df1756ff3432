/**
 * Builds the page (src/web/page/) with esbuild's JS API, in memory, when the server starts: one
 * script (the page's TypeScript with xterm.js) and one style sheet (xterm.js's and the page's).
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** The page's files as the server serves them. */
export interface PageAssets {
  html: string;
  js: Uint8Array;
  css: Uint8Array;
}

const PAGE_DIR = fileURLToPath(new URL("./page/", import.meta.url));

let cached: Promise<PageAssets> | null = null;

/** Bundles the page (once per process; later calls share the result). */
export function buildPage(): Promise<PageAssets> {
  cached ??= doBuild();
  return cached;
}

async function doBuild(): Promise<PageAssets> {
  const result = await build({
    entryPoints: [
      { in: `${PAGE_DIR}main.ts`, out: "app" },
      { in: `${PAGE_DIR}style.css`, out: "app" },
    ],
    bundle: true,
    write: false,
    outdir: "/boxvm-page",
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify: true,
    sourcemap: false,
    legalComments: "eof",
    logLevel: "silent",
    tsconfig: `${PAGE_DIR}tsconfig.json`,
  });
  let js: Uint8Array | null = null;
  let css: Uint8Array | null = null;
  for (const f of result.outputFiles) {
    if (f.path.endsWith("/app.js")) js = f.contents;
    else if (f.path.endsWith("/app.css")) css = f.contents;
  }
  if (!js || !css) throw new Error(`The page bundle lacks ${js ? "app.css" : "app.js"}`);
  const html = await readFile(`${PAGE_DIR}index.html`, "utf8");
  return { html, js, css };
}
