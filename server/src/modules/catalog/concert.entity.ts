import { defineEntity, p } from "@mikro-orm/core";

/** A show that sells seats on one or more dates. */
export class Concert {
  constructor(
    readonly id: string,
    public title: string,
    public venue: string,
    readonly createdAt: Date,
    /** The venue's IANA time zone: dates are calendar dates in it. */
    public timeZone = "UTC",
  ) {}
}

/** The table mapping of {@link Concert}. */
export const ConcertSchema = defineEntity({
  class: Concert,
  tableName: "concert",
  properties: {
    id: p.uuid().primary(),
    title: p.text(),
    venue: p.text(),
    createdAt: p.datetime(),
    timeZone: p.text(),
  },
});
