import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
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
 * Serves the built web box office from one folder: `/` is its index.html,
 * other GET/HEAD paths are files inside the folder (never outside it, never
 * dotfiles, never directory listings). Returns false for anything it does not
 * serve, so the caller can answer 404.
 */
export function createStaticFiles(root: string, logger: Logger) {
  const base = path.resolve(root);
  return async function serveStatic(req: NodeRequest, res: NodeResponse): Promise<boolean> {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    } catch {
      return false;
    }
    if (pathname === "/") pathname = "/index.html";
    const file = path.resolve(base, `.${pathname}`);
    if (
      !file.startsWith(`${base}${path.sep}`) ||
      pathname.split("/").some((p) => p.startsWith("."))
    ) {
      return false;
    }
    const type = TYPES[path.extname(file)];
    if (type === undefined) return false;
    let size: number;
    try {
      const info = await stat(file);
      if (!info.isFile()) return false;
      size = info.size;
    } catch {
      return false;
    }
    res.writeHead(200, {
      "content-type": type,
      "content-length": String(size),
      // The page is rebuilt in place, so browsers revalidate every time.
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      ...(type.startsWith("text/html")
        ? { "content-security-policy": CONTENT_SECURITY_POLICY }
        : {}),
    });
    if (req.method === "HEAD") {
      res.end();
      return true;
    }
    const stream = createReadStream(file);
    stream.on("error", (error) => {
      logger.warn({ err: error, file }, "could not read a web file");
      res.destroy?.();
    });
    stream.pipe(res as unknown as NodeJS.WritableStream);
    return true;
  };
}
