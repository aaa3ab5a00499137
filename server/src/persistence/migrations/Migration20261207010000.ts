import { Migration } from "@mikro-orm/migrations";

/**
 * What the operator API records about the catalog: a concert's IANA time
 * zone (existing concerts get UTC), a performance's optional early close of
 * sales, and each seat's section and row labels (empty for existing seats).
 */
export class Migration20261207010000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      alter table concert add column time_zone text not null default 'UTC'
        check (length(time_zone) between 1 and 64);
      alter table concert_date add column sales_close_at timestamptz;
      alter table concert_date add constraint concert_date_sales_close_check
        check (sales_close_at is null or sales_close_at <= starts_at);
      alter table seat add column section text not null default ''
        check (length(section) <= 40);
      alter table seat add column row_label text not null default ''
        check (length(row_label) <= 20);
    `);
  }

  override async down(): Promise<void> {
    this.addSql(`
      alter table seat drop column row_label;
      alter table seat drop column section;
      alter table concert_date drop constraint concert_date_sales_close_check;
      alter table concert_date drop column sales_close_at;
      alter table concert drop column time_zone;
    `);
  }
}
