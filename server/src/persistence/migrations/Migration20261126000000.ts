import { Migration } from "@mikro-orm/migrations";

/**
 * The first schema: catalog, seats, reservations, wallets, ledger, payments,
 * request-id claims and the server secret. Written by hand rather than
 * diffed, because the constraints below are the invariants themselves.
 */
export class Migration20261126000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table concert (
        id uuid primary key,
        title text not null check (length(title) between 1 and 200),
        venue text not null check (length(venue) between 1 and 200),
        created_at timestamptz not null
      );

      create table concert_date (
        id uuid primary key,
        concert_id uuid not null references concert (id),
        date date not null,
        starts_at timestamptz not null,
        total_seats integer not null check (total_seats >= 0),
        unique (concert_id, date)
      );

      -- No index covers status, held_until or reservation_id, and fillfactor
      -- leaves room on each page, so holding, selling and freeing a seat are
      -- HOT updates. Listings scan (concert_date_id, number) in order.
      create table seat (
        id uuid primary key,
        concert_date_id uuid not null references concert_date (id),
        number integer not null check (number > 0),
        grade text not null check (length(grade) between 1 and 20),
        price bigint not null check (price > 0),
        status text not null check (status in ('AVAILABLE', 'HELD', 'SOLD')),
        held_until timestamptz,
        reservation_id uuid,
        version integer not null,
        unique (concert_date_id, number),
        check ((status = 'HELD') = (held_until is not null)),
        check ((status = 'AVAILABLE') = (reservation_id is null))
      ) with (fillfactor = 90);


      create table reservation (
        id uuid primary key,
        user_id text not null check (length(user_id) between 1 and 512),
        concert_id uuid not null references concert (id),
        concert_date_id uuid not null references concert_date (id),
        date date not null,
        seat_id uuid not null references seat (id),
        seat_number integer not null,
        price bigint not null check (price > 0),
        status text not null check (status in ('HELD', 'CONFIRMED', 'RELEASED', 'EXPIRED')),
        held_until timestamptz not null,
        created_at timestamptz not null,
        confirmed_at timestamptz,
        ended_at timestamptz,
        check ((status = 'CONFIRMED') = (confirmed_at is not null))
      );
      -- A user holds at most one seat at a time, whatever the code does.
      create unique index reservation_one_hold_per_user on reservation (user_id) where status = 'HELD';
      -- A seat is sold at most once, whatever the code does.
      create unique index reservation_one_sale_per_seat on reservation (seat_id) where status = 'CONFIRMED';
      create index reservation_user_idx on reservation (user_id, created_at desc, id desc);
      create index reservation_expiry_idx on reservation (held_until) where status = 'HELD';

      create table wallet (
        user_id text primary key check (length(user_id) between 1 and 512),
        balance bigint not null check (balance >= 0),
        version integer not null check (version >= 0),
        created_at timestamptz not null,
        updated_at timestamptz not null
      );

      create table payment (
        id uuid primary key,
        user_id text not null references wallet (user_id),
        reservation_id uuid not null unique references reservation (id),
        amount bigint not null check (amount > 0),
        status text not null check (status in ('COMPLETED')),
        created_at timestamptz not null
      );
      create index payment_user_idx on payment (user_id);

      create table ledger_entry (
        id uuid primary key,
        user_id text not null references wallet (user_id),
        kind text not null check (kind in ('RECHARGE', 'PAYMENT')),
        amount bigint not null check (amount <> 0),
        balance_after bigint not null check (balance_after >= 0),
        wallet_version integer not null,
        -- Deferred, so a payment and its ledger entry flush in either order.
        payment_id uuid unique references payment (id) deferrable initially deferred,
        created_at timestamptz not null,
        check ((kind = 'PAYMENT') = (payment_id is not null)),
        check ((kind = 'RECHARGE') = (amount > 0)),
        unique (user_id, wallet_version)
      );

      create table idempotency_key (
        user_id text not null,
        request_id text not null check (length(request_id) between 1 and 128),
        operation text not null,
        request_hash text not null,
        result_id uuid not null,
        created_at timestamptz not null,
        primary key (user_id, request_id)
      );
      create index idempotency_key_created_idx on idempotency_key (created_at);

      -- Shared by every instance: keys the derivation of queue tokens when
      -- TOKEN_SECRET is not configured.
      create table server_secret (
        name text primary key,
        value bytea not null,
        created_at timestamptz not null default now()
      );
    `);
  }

  override async down(): Promise<void> {
    this.addSql(`
      drop table server_secret;
      drop table idempotency_key;
      drop table ledger_entry;
      drop table payment;
      drop table wallet;
      drop table reservation;
      drop table seat;
      drop table concert_date;
      drop table concert;
    `);
  }
}
