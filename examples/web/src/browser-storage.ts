import type { FanSession } from "./app-state.js";
import { isLang, type Lang } from "./i18n.js";

const SESSION_KEY = "stagedoor.session";
const LANG_KEY = "stagedoor.lang";

/**
 * What the page remembers between loads: the fan's place in line for this
 * tab (sessionStorage, so a reload keeps the place but a new tab or a closed
 * browser starts afresh) and the chosen language (localStorage). Storage can
 * be unavailable (private modes, disabled cookies); then nothing is
 * remembered and the page still works.
 */
export const browserStorage = {
  loadSession(): FanSession | undefined {
    const raw = guarded(() => sessionStorage.getItem(SESSION_KEY));
    if (raw === undefined || raw === null) return undefined;
    try {
      const value: unknown = JSON.parse(raw);
      if (
        typeof value === "object" &&
        value !== null &&
        "userId" in value &&
        "token" in value &&
        "concertId" in value &&
        typeof value.userId === "string" &&
        typeof value.token === "string" &&
        typeof value.concertId === "string"
      ) {
        return { userId: value.userId, token: value.token, concertId: value.concertId };
      }
    } catch {
      // A damaged entry is as good as none.
    }
    return undefined;
  },

  saveSession(session: FanSession | undefined): void {
    guarded(() =>
      session === undefined
        ? sessionStorage.removeItem(SESSION_KEY)
        : sessionStorage.setItem(SESSION_KEY, JSON.stringify(session)),
    );
  },

  loadLang(): Lang | undefined {
    const value = guarded(() => localStorage.getItem(LANG_KEY));
    return isLang(value) ? value : undefined;
  },

  saveLang(lang: Lang): void {
    guarded(() => localStorage.setItem(LANG_KEY, lang));
  },
};

/** Runs a storage call, treating a refusal (SecurityError, quota) as "nothing stored". */
function guarded<T>(call: () => T): T | undefined {
  try {
    return call();
  } catch {
    return undefined;
  }
}
