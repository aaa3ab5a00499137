// Builds the web box office into dist/ (or the folder given with --outdir):
// one minified ES module bundle (the app, the SDK's TypeScript sources and the
// generated code), the page, the stylesheet and the icon. The server serves
// that folder at `/`.
//
//   node build.mjs                 # → ./dist
//   node build.mjs --outdir /tmp/x # → /tmp/x (the browser tests build there)
import { copyFile, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const STATIC_FILES = ["index.html", "styles.css", "favicon.svg"];

/** Reads `--outdir <dir>` (relative to the current directory) or falls back to ./dist here. */
function outputFolder(argv) {
  const flag = argv.indexOf("--outdir");
  if (flag === -1) return path.join(here, "dist");
  const value = argv[flag + 1];
  if (value === undefined || value.startsWith("--")) throw new Error("--outdir needs a folder");
  return path.resolve(value);
}

const outdir = outputFolder(process.argv.slice(2));
await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

const result = await build({
  entryPoints: [path.join(here, "src", "main.ts")],
  outfile: path.join(outdir, "app.js"),
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  // The SDK exports its TypeScript sources under this condition; bundling
  // them means the page needs no SDK build first.
  conditions: ["stagedoor-source"],
  metafile: true,
  logLevel: "warning",
});

// A browser has no Node built-ins: fail the build rather than ship a page
// that breaks at load time.
const nodeImports = Object.values(result.metafile.inputs)
  .flatMap((input) => input.imports)
  .filter((imported) => imported.path.startsWith("node:") || imported.external);
if (nodeImports.length > 0) {
  throw new Error(
    `the bundle must not import Node built-ins or externals: ${nodeImports.map((i) => i.path).join(", ")}`,
  );
}

for (const file of STATIC_FILES) {
  await copyFile(path.join(here, file), path.join(outdir, file));
}

const bytes = result.metafile.outputs[path.relative(process.cwd(), path.join(outdir, "app.js"))];
console.log(
  `built the web box office into ${outdir}${bytes ? ` (app.js ${Math.round(bytes.bytes / 1024)} KiB)` : ""}`,
);
