import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../logger.js";
import type { NodeRequest, NodeResponse } from "./rest/rest-io.js";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webmanifest": "application/manifest+json",
  ".txt": "text/plain; charset=utf-8",
};

/** The page may talk to this server only, and load nothing from elsewhere. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
  "script-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/**
 * A file the build named by a hash of its content (`app-QLVN7RLU.js`,
 * `styles-1A2B3C4D.css`): its bytes never change under that name, so browsers
 * and proxies may keep it for a year without asking again.
 */
const CONTENT_HASHED = /^[a-z]+-[A-Z0-9]{8}\.(?:js|css)$/;
const IMMUTABLE = "public, max-age=31536000, immutable";
/** Everything else (the page above all) is rebuilt in place: revalidate every time. */
const REVALIDATE = "no-cache";

/** Precompressed siblings the build writes (`app-….js.br`, `.gz`), best first. */
const ENCODINGS = [
  { name: "br", suffix: ".br" },
  { name: "gzip", suffix: ".gz" },
] as const;

/**
 * The pages served at a path of their own: the fans' box office at `/`, the
 * operator console at `/admin`. Each gets the content security policy.
 */
const PAGES: ReadonlyMap<string, string> = new Map([
  ["/", "/index.html"],
  ["/admin", "/admin.html"],
]);

/** Where the page's settings go: the build leaves this tag in index.html for the server to fill. */
const SETTINGS_TAG = '<meta name="stagedoor-settings" content="{}">';

/**
 * What the box office page needs to know of this server's configuration,
 * handed to it inside index.html (it may load nothing else before it starts).
 */
export interface WebPageSettings {
  /** `hmac`: fans join with a signed assertion handed over by the operator's site. */
  readonly auth: "trust" | "hmac";
  /** The operator's sign-in page, linked for fans who arrive without an assertion. */
  readonly loginUrl?: string;
  /** Origins whose pages may hand an assertion over by `postMessage`. */
  readonly loginOrigins: readonly string[];
}

/**
 * Serves the built web box office from one folder: `/` is its index.html
 * (with the page's settings filled in), `/admin` the operator console's
 * admin.html, other GET/HEAD paths are files inside
 * the folder (never outside it, never dotfiles, never directory listings).
 * A file the build precompressed goes out brotli- or gzip-encoded when the
 * browser accepts it; content-hashed files are cached for a year, the rest
 * revalidated. Returns false for anything it does not serve, so the caller
 * can answer 404.
 */
export function createStaticFiles(root: string, logger: Logger, settings: WebPageSettings) {
  const base = path.resolve(root);
  // Escaped for an attribute value: the JSON holds URLs the operator configured.
  const settingsTag = `<meta name="stagedoor-settings" content="${escapeAttribute(JSON.stringify(settings))}">`;
  return async function serveStatic(req: NodeRequest, res: NodeResponse): Promise<boolean> {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    } catch {
      return false;
    }
    pathname = PAGES.get(pathname) ?? pathname;
    const file = path.resolve(base, `.${pathname}`);
    if (
      !file.startsWith(`${base}${path.sep}`) ||
      pathname.split("/").some((p) => p.startsWith("."))
    ) {
      return false;
    }
    const type = TYPES[path.extname(file)];
    if (type === undefined) return false;
    const headers: Record<string, string> = {
      "content-type": type,
      "cache-control": CONTENT_HASHED.test(path.basename(file)) ? IMMUTABLE : REVALIDATE,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    };

    if ([...PAGES.values()].some((page) => file === path.join(base, page))) {
      let page: string;
      try {
        page = (await readFile(file, "utf8")).replace(SETTINGS_TAG, settingsTag);
      } catch {
        return false;
      }
      const body = Buffer.from(page, "utf8");
      res.writeHead(200, {
        ...headers,
        "content-length": String(body.length),
        "content-security-policy": CONTENT_SECURITY_POLICY,
      });
      if (req.method === "HEAD") res.end();
      else res.end(body);
      return true;
    }

    const size = await fileSize(file);
    if (size === undefined) return false;
    const variants = (
      await Promise.all(
        ENCODINGS.map(async ({ name, suffix }) => {
          const encodedSize = await fileSize(`${file}${suffix}`);
          return encodedSize === undefined
            ? undefined
            : { path: `${file}${suffix}`, size: encodedSize, encoding: name };
        }),
      )
    ).filter((variant) => variant !== undefined);
    const accepted = acceptedEncodings(req.headers["accept-encoding"]);
    const encoded = variants.find((variant) => accepted.has(variant.encoding));
    const chosen = encoded ?? { path: file, size };
    res.writeHead(200, {
      ...headers,
      "content-length": String(chosen.size),
      ...(encoded ? { "content-encoding": encoded.encoding } : {}),
      // Caches must keep one copy per encoding of a file that has several.
      ...(variants.length > 0 ? { vary: "accept-encoding" } : {}),
    });
    if (req.method === "HEAD") {
      res.end();
      return true;
    }
    const stream = createReadStream(chosen.path);
    stream.on("error", (error) => {
      logger.warn({ err: error, file: chosen.path }, "could not read a web file");
      res.destroy?.();
    });
    stream.pipe(res as unknown as NodeJS.WritableStream);
    return true;
  };
}

/** The size of a regular file, or undefined when there is none. */
async function fileSize(file: string): Promise<number | undefined> {
  try {
    const info = await stat(file);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The content codings an `Accept-Encoding` header accepts (RFC 9110 §12.5.3):
 * each listed name whose weight is not 0. `*` is not expanded; browsers
 * always name br and gzip.
 */
function acceptedEncodings(header: string | string[] | undefined): Set<string> {
  const accepted = new Set<string>();
  const value = Array.isArray(header) ? header.join(",") : (header ?? "");
  for (const part of value.split(",")) {
    const [name = "", ...params] = part.split(";").map((p) => p.trim().toLowerCase());
    if (name === "") continue;
    const weight = params.find((p) => p.startsWith("q="));
    if (weight !== undefined && Number(weight.slice(2)) === 0) continue;
    accepted.add(name);
  }
  return accepted;
}

function escapeAttribute(value: string): string {
  return value
    .replaceAll("&", "&amp;")
    .replaceAll('"', "&quot;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;");
}
