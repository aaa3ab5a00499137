import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A stand-in for an operator's own site in `AUTH_MODE=hmac`: its sign-in has
 * already happened (the test signs the assertion), and its page hands the
 * assertion to the box office the two documented ways.
 *
 * - `/login?mode=fragment&assertion=…` sends the browser to the box office
 *   with `#assertion=…`.
 * - `/login?mode=popup&assertion=…` has a button that opens the box office
 *   with `window.open` and answers its `stagedoor.ready` with the assertion.
 * - `/login?mode=push&assertion=…` opens the box office and posts the
 *   assertion to it every 100 ms without waiting to be asked (what a page on
 *   an origin the box office does not trust might try); `window.pushes`
 *   counts the posts.
 */
export interface LoginSite {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The box office the pages send fans to; set once it is running. */
  boxOffice: string;
  stop(): Promise<void>;
}

/** Starts the stand-in site on a free port. */
export async function startLoginSite(): Promise<LoginSite> {
  const site: LoginSite = {
    url: "",
    boxOffice: "",
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname !== "/login") {
      res.writeHead(404).end();
      return;
    }
    const config = JSON.stringify({
      boxOffice: site.boxOffice,
      assertion: url.searchParams.get("assertion") ?? "",
    });
    const script = SCRIPTS[url.searchParams.get("mode") ?? ""] ?? "";
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      `<!doctype html><title>Operator sign-in</title>` +
        `<button id="open">Go to the box office</button>` +
        `<script>const config = ${config};\n${script}</script>`,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(site, { url: `http://127.0.0.1:${port}` });
}

const SCRIPTS: Record<string, string> = {
  fragment: `
    location.href = config.boxOffice + "/#assertion=" + encodeURIComponent(config.assertion);
  `,
  popup: `
    const boxOfficeOrigin = new URL(config.boxOffice).origin;
    let boxOffice = null;
    document.getElementById("open").addEventListener("click", () => {
      boxOffice = window.open(config.boxOffice + "/", "box-office");
    });
    window.addEventListener("message", (event) => {
      if (event.origin !== boxOfficeOrigin || event.source !== boxOffice) return;
      if (event.data && event.data.type === "stagedoor.ready") {
        boxOffice.postMessage(
          { type: "stagedoor.assertion", assertion: config.assertion },
          boxOfficeOrigin,
        );
      }
    });
  `,
  push: `
    const boxOfficeOrigin = new URL(config.boxOffice).origin;
    window.pushes = 0;
    document.getElementById("open").addEventListener("click", () => {
      const boxOffice = window.open(config.boxOffice + "/", "box-office");
      setInterval(() => {
        boxOffice.postMessage(
          { type: "stagedoor.assertion", assertion: config.assertion },
          boxOfficeOrigin,
        );
        window.pushes += 1;
      }, 100);
    });
  `,
};
