import type { PageSettings } from "./page-settings.js";

/**
 * How the operator's site hands the box office a fan's signed assertion
 * (`AUTH_MODE=hmac`), once its own sign-in has said who the fan is:
 *
 * - **URL fragment**: it sends the fan to `https://box-office/#assertion=<assertion>`.
 *   The fragment never reaches any server, and the page removes it at once
 *   so it is neither bookmarked nor shared.
 * - **postMessage**: it opens the box office with `window.open` and, when the
 *   page says `{ type: "stagedoor.ready" }`, answers
 *   `{ type: "stagedoor.assertion", assertion }` to the box office's origin.
 *   The page accepts it only from its opener, and only from an origin the
 *   server lists (`WEB_LOGIN_ORIGINS`, or that of `WEB_LOGIN_URL`).
 *
 * See examples/web/README.md for the operator's side.
 */
export const READY_MESSAGE = "stagedoor.ready";
export const ASSERTION_MESSAGE = "stagedoor.assertion";

/** Takes `#assertion=…` out of the page's URL and returns it. */
export function takeAssertionFromFragment(win: Window): string | undefined {
  const fragment = new URLSearchParams(win.location.hash.replace(/^#/, ""));
  const assertion = fragment.get("assertion");
  if (assertion === null) return undefined;
  fragment.delete("assertion");
  const rest = fragment.toString();
  win.history.replaceState(
    win.history.state,
    "",
    `${win.location.pathname}${win.location.search}${rest === "" ? "" : `#${rest}`}`,
  );
  return assertion === "" ? undefined : assertion;
}

/**
 * Tells the opener (the operator's page, when it opened this one) that the box
 * office is ready, and hands every assertion an allowed origin sends back to
 * `onAssertion`. Returns the function that stops listening.
 */
export function listenForAssertion(
  win: Window,
  settings: PageSettings,
  onAssertion: (assertion: string) => void,
): () => void {
  const allowed = new Set(settings.loginOrigins);
  const listener = (event: MessageEvent) => {
    if (!allowed.has(event.origin) || event.source !== win.opener) return;
    const data: unknown = event.data;
    if (
      typeof data === "object" &&
      data !== null &&
      "type" in data &&
      "assertion" in data &&
      data.type === ASSERTION_MESSAGE &&
      typeof data.assertion === "string" &&
      data.assertion !== ""
    ) {
      onAssertion(data.assertion);
    }
  };
  win.addEventListener("message", listener);
  const opener = win.opener as Window | null;
  if (opener !== null && allowed.size > 0) {
    // Only a page of an allowed origin can receive it: postMessage drops a
    // message whose target origin is not the opener's (and Chromium logs an
    // error), so address the page the fan came from when it is allowed.
    const from = originOf(win.document.referrer);
    const targets = from !== undefined && allowed.has(from) ? [from] : [...allowed];
    for (const origin of targets) opener.postMessage({ type: READY_MESSAGE }, origin);
  }
  return () => win.removeEventListener("message", listener);
}

/**
 * The user id an assertion (`v1.<base64url(userId)>.<expiry>.<signature>`)
 * speaks for, to show the fan who they are signed in as; the server checks
 * the signature. Undefined when it is not shaped like one.
 */
export function assertionUser(assertion: string): string | undefined {
  const parts = assertion.split(".");
  if (parts.length !== 4 || parts[0] !== "v1" || !/^[A-Za-z0-9_-]+$/.test(parts[1] ?? "")) {
    return undefined;
  }
  try {
    const base64 = (parts[1] ?? "").replaceAll("-", "+").replaceAll("_", "/");
    const bytes = Uint8Array.from(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")), (c) =>
      c.charCodeAt(0),
    );
    const userId = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return userId === "" ? undefined : userId;
  } catch {
    return undefined;
  }
}

function originOf(url: string): string | undefined {
  try {
    return url === "" ? undefined : new URL(url).origin;
  } catch {
    return undefined;
  }
}
