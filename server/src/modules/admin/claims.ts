import type { AdminActor } from "../identity/index.js";

/**
 * The owner of an operator's request-id claims. Fans' user ids can never
 * contain control characters (`requireUserId`), so an operator's claims can
 * never collide with a fan's, whatever ids either picks.
 */
export function claimOwner(actor: AdminActor): string {
  return `\u0001admin:${actor.name}`;
}
