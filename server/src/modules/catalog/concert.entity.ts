import { defineEntity, p } from "@mikro-orm/core";

/** A show that sells seats on one or more dates. */
export class Concert {
  constructor(
    readonly id: string,
    public title: string,
    public venue: string,
    readonly createdAt: Date,
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
  },
});
