// Builds the web box office into dist/ (or the folder given with --outdir):
// one minified ES module bundle (the app, the SDK's TypeScript sources and the
// generated code) and the stylesheet, both named by a hash of their content
// (app-<hash>.js, styles-<hash>.css) and precompressed next to themselves
// (.br, .gz), the page that loads them, and the icon. The operator console
// is a second page built the same way (admin.html, admin-<hash>.js and
// admin-<hash>.css), a bundle of its own so the fans' stays as small. The server serves that
// folder at `/`: the hashed files with a year of immutable caching, the page
// with no-cache, so a new build reaches every fan on their next load.
//
//   node build.mjs                 # → ./dist
//   node build.mjs --outdir /tmp/x # → /tmp/x (the browser tests build there)
import { createHash } from "node:crypto";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { brotliCompress, constants, gzip } from "node:zlib";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);

/** Writes `file.br` and `file.gz` next to `file`, compressed as hard as each format goes. */
async function precompress(file) {
  const content = await readFile(file);
  await writeFile(
    `${file}.br`,
    await brotli(content, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_SIZE_HINT]: content.length,
      },
    }),
  );
  await writeFile(`${file}.gz`, await gzipped(content, { level: 9 }));
}

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
  entryPoints: {
    app: path.join(here, "src", "main.ts"),
    admin: path.join(here, "src", "admin", "main.ts"),
  },
  outdir,
  // esbuild's content hash: a new build with any change gets a new name.
  entryNames: "[name]-[hash]",
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

const [appPath, app] = Object.entries(result.metafile.outputs).find(
  ([, output]) =>
    output.entryPoint?.endsWith("src/main.ts") && !output.entryPoint.includes("admin"),
);
const appJs = path.basename(appPath);

const css = await readFile(path.join(here, "styles.css"));
const stylesCss = `styles-${createHash("sha256").update(css).digest("hex").slice(0, 8).toUpperCase()}.css`;
await writeFile(path.join(outdir, stylesCss), css);

const page = await readFile(path.join(here, "index.html"), "utf8");
const linked = page
  .replace('href="./styles.css"', `href="./${stylesCss}"`)
  .replace('src="./app.js"', `src="./${appJs}"`);
if (!linked.includes(appJs) || !linked.includes(stylesCss)) {
  throw new Error("index.html must load ./app.js and ./styles.css");
}
await writeFile(path.join(outdir, "index.html"), linked);
await copyFile(path.join(here, "favicon.svg"), path.join(outdir, "favicon.svg"));

// The operator console's page, served at /admin.
const [adminPath] = Object.entries(result.metafile.outputs).find(([, output]) =>
  output.entryPoint?.endsWith("admin/main.ts"),
);
const adminJs = path.basename(adminPath);
const adminCssText = await readFile(path.join(here, "admin.css"));
const adminCss = `admin-${createHash("sha256").update(adminCssText).digest("hex").slice(0, 8).toUpperCase()}.css`;
await writeFile(path.join(outdir, adminCss), adminCssText);
const adminPage = (await readFile(path.join(here, "admin.html"), "utf8"))
  .replace('href="./admin.css"', `href="./${adminCss}"`)
  .replace('src="./admin.js"', `src="./${adminJs}"`);
if (!adminPage.includes(adminJs) || !adminPage.includes(adminCss)) {
  throw new Error("admin.html must load ./admin.js and ./admin.css");
}
await writeFile(path.join(outdir, "admin.html"), adminPage);

await Promise.all(
  [appJs, stylesCss, adminJs, adminCss].map((file) => precompress(path.join(outdir, file))),
);

console.log(
  `built the web box office into ${outdir} (${appJs} ${Math.round(app.bytes / 1024)} KiB, ${adminJs} for /admin)`,
);
