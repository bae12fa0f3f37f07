// Builds the dashboard into exactly dist/index.html, dist/app.js and
// dist/app.css, which the server embeds. Deterministic: same sources and
// lockfile, same bytes (checked by .ci/web-check).
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { build } from "esbuild";

const here = new URL(".", import.meta.url);
process.chdir(here.pathname);

await mkdir("dist", { recursive: true });
for (const f of await readdir("dist")) {
  if (!["index.html", "app.js", "app.css"].includes(f)) await rm(`dist/${f}`, { recursive: true });
}

await build({
  entryPoints: { app: "src/main.ts" },
  outdir: "dist",
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  charset: "utf8",
  legalComments: "eof",
  sourcemap: false,
  logLevel: "warning",
});
await copyFile("src/index.html", "dist/index.html");

const files = (await readdir("dist")).sort();
if (files.join() !== "app.css,app.js,index.html") {
  throw new Error(`dist/ must hold exactly app.css, app.js, index.html; found ${files.join(", ")}`);
}
console.log("built dist/index.html, dist/app.js, dist/app.css");
