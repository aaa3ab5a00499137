import { Migration } from "@mikro-orm/migrations";

/**
 * The operator API: an append-only audit trail of every admin change, and
 * refunds and support credits in the money tables.
 *
 * - `admin_audit` rows are written in the same transaction as the change
 *   they record; a trigger refuses every UPDATE, DELETE and TRUNCATE, so the
 *   trail can only grow, whatever the code does.
 * - A paid reservation can become REFUNDED (it stays confirmed in history:
 *   `confirmed_at` is kept), and its payment too (`refunded_at` set).
 * - Two new ledger kinds, both positive: REFUND (pays a payment back;
 *   `refunded_payment_id` names it, and is unique, so no payment is ever
 *   refunded twice) and CREDIT (a support gesture). PAYMENT stays the one
 *   negative kind.
 */
export class Migration20261207000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table admin_audit (
        id uuid primary key,
        actor text not null check (length(actor) between 1 and 64),
        action text not null check (length(action) between 1 and 64),
        target text not null check (length(target) between 1 and 200),
        before jsonb,
        after jsonb,
        request_id text check (length(request_id) between 1 and 128),
        created_at timestamptz not null
      );
      create index admin_audit_created_idx on admin_audit (created_at desc, id desc);
      create index admin_audit_target_idx on admin_audit (target, created_at desc);

      create function admin_audit_append_only() returns trigger language plpgsql as $$
      begin
        raise exception 'admin_audit is append-only: % refused', tg_op
          using errcode = 'insufficient_privilege';
      end
      $$;
      create trigger admin_audit_no_update_or_delete
        before update or delete on admin_audit
        for each row execute function admin_audit_append_only();
      create trigger admin_audit_no_truncate
        before truncate on admin_audit
        for each statement execute function admin_audit_append_only();

      alter table reservation drop constraint reservation_status_check;
      alter table reservation add constraint reservation_status_check
        check (status in ('HELD', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'REFUNDED'));
      alter table reservation drop constraint reservation_check;
      alter table reservation add constraint reservation_confirmed_check
        check ((status in ('CONFIRMED', 'REFUNDED')) = (confirmed_at is not null));

      alter table payment add column refunded_at timestamptz;
      alter table payment drop constraint payment_status_check;
      alter table payment add constraint payment_status_check
        check (status in ('COMPLETED', 'REFUNDED'));
      alter table payment add constraint payment_refunded_check
        check ((status = 'REFUNDED') = (refunded_at is not null));

      alter table ledger_entry add column refunded_payment_id uuid unique references payment (id);
      alter table ledger_entry drop constraint ledger_entry_kind_check;
      alter table ledger_entry add constraint ledger_entry_kind_check
        check (kind in ('RECHARGE', 'PAYMENT', 'REFUND', 'CREDIT'));
      alter table ledger_entry drop constraint ledger_entry_check1;
      alter table ledger_entry add constraint ledger_entry_sign_check
        check ((kind = 'PAYMENT') = (amount < 0));
      alter table ledger_entry add constraint ledger_entry_refund_check
        check ((kind = 'REFUND') = (refunded_payment_id is not null));
    `);
  }

  override async down(): Promise<void> {
    this.addSql(`
      alter table ledger_entry drop constraint ledger_entry_refund_check;
      alter table ledger_entry drop constraint ledger_entry_sign_check;
      alter table ledger_entry add constraint ledger_entry_check1
        check ((kind = 'RECHARGE') = (amount > 0));
      alter table ledger_entry drop constraint ledger_entry_kind_check;
      alter table ledger_entry add constraint ledger_entry_kind_check
        check (kind in ('RECHARGE', 'PAYMENT'));
      alter table ledger_entry drop column refunded_payment_id;

      alter table payment drop constraint payment_refunded_check;
      alter table payment drop constraint payment_status_check;
      alter table payment add constraint payment_status_check check (status in ('COMPLETED'));
      alter table payment drop column refunded_at;

      alter table reservation drop constraint reservation_confirmed_check;
      alter table reservation add constraint reservation_check
        check ((status = 'CONFIRMED') = (confirmed_at is not null));
      alter table reservation drop constraint reservation_status_check;
      alter table reservation add constraint reservation_status_check
        check (status in ('HELD', 'CONFIRMED', 'RELEASED', 'EXPIRED'));

      drop table admin_audit;
      drop function admin_audit_append_only();
    `);
  }
}
