import { Migration } from "@mikro-orm/migrations";

/**
 * Tickets fans can come back to.
 *
 * - `fan_session`: read-only sessions (TicketService.CreateSession). Only the
 *   SHA-256 of a session token is stored, never the token. Opening a session
 *   deletes up to 100 ended ones (by the expiry index), so the table stays
 *   the size of the sessions alive.
 * - `ticket_use`: a ticket's entry code checked at the door, at most once per
 *   ticket (the primary key), with when and by which operator.
 */
export class Migration20261207040000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table fan_session (
        token_hash bytea primary key check (length(token_hash) = 32),
        user_id text not null,
        created_at timestamptz not null,
        expires_at timestamptz not null check (expires_at > created_at)
      );
      create index fan_session_expiry_idx on fan_session (expires_at);

      create table ticket_use (
        reservation_id uuid primary key references reservation (id),
        used_at timestamptz not null,
        actor text not null check (length(actor) between 1 and 64)
      );
    `);
  }

  override async down(): Promise<void> {
    this.addSql(`
      drop table ticket_use;
      drop table fan_session;
    `);
  }
}
