import { Migration } from "@mikro-orm/migrations";

/**
 * A concert's sale settings (scheduled opening, admission limits, the
 * emergency brake) and the record of its opening draw, kept for audit.
 *
 * - `sale_settings` has at most one row per concert; zero limits mean the
 *   server's defaults. Every change is also written to `admin_audit` in the
 *   same transaction. The waiting room's store holds a copy that it enforces.
 * - `opening_draw` is written once per concert (its primary key), by the
 *   first server instance that sees the draw the store made; `token_ids` is
 *   the drawn order.
 */
export class Migration20261207031500 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table sale_settings (
        concert_id uuid primary key references concert (id),
        opens_at timestamptz,
        max_admitted integer not null default 0 check (max_admitted between 0 and 1000000),
        admission_ms integer not null default 0
          check (admission_ms = 0 or admission_ms between 10000 and 86400000),
        hold_ms integer not null default 0
          check (hold_ms = 0 or hold_ms between 5000 and 3600000),
        paused boolean not null default false,
        pause_reason text not null default '' check (length(pause_reason) <= 500),
        updated_at timestamptz not null
      );

      create table opening_draw (
        concert_id uuid primary key references concert (id),
        drawn_at timestamptz not null,
        seed text not null check (seed ~ '^[0-9a-f]{64}$'),
        lobby_size integer not null check (lobby_size >= 0),
        token_ids text[] not null check (cardinality(token_ids) = lobby_size)
      );
    `);
  }

  override async down(): Promise<void> {
    this.addSql(`
      drop table opening_draw;
      drop table sale_settings;
    `);
  }
}
