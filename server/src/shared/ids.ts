import { randomUUID } from "node:crypto";

/** A new random (version 4) UUID for a database row. */
export function newId(): string {
  return randomUUID();
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether a string is a canonical lower-case UUID, the only id form we issue. */
export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}
