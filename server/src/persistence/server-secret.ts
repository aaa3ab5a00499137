import { randomBytes } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";

/**
 * Returns the named server secret, creating a random 32-byte one on first use.
 * Kept in PostgreSQL so every instance of a deployment shares it without the
 * operator having to configure anything; an explicit TOKEN_SECRET overrides it.
 */
export async function loadOrCreateServerSecret(em: EntityManager, name: string): Promise<Buffer> {
  await em.execute(
    "insert into server_secret (name, value) values (?, decode(?, 'hex')) on conflict (name) do nothing",
    [name, randomBytes(32).toString("hex")],
  );
  const [row] = await em.execute<{ value: string }[]>(
    "select encode(value, 'hex') as value from server_secret where name = ?",
    [name],
  );
  if (!row) throw new Error(`server secret ${name} vanished after its creation`);
  return Buffer.from(row.value, "hex");
}
