/** The facts of one seat that never change once the seat exists. */
export interface SeatFacts {
  readonly id: string;
  readonly concertDateId: string;
  readonly number: number;
  readonly grade: string;
  readonly price: bigint;
}

/** One seat row as the loader reads it. */
export interface SeatFactsRow {
  readonly id: string;
  readonly number: number;
  readonly grade: string;
  /** bigint as text, as `pg` returns it. */
  readonly price: string;
}

/**
 * Every seat of one concert date, in seat-number order, with the facts that
 * never change (id, number, grade, price): loaded once with one query and
 * kept for the life of the process, so holds, listings and the REST routes
 * resolve seats without the database. Seat states live elsewhere (the
 * listing cache and the seat rows).
 */
export class DateSeats {
  readonly ids: readonly string[];
  readonly numbers: Int32Array;
  readonly grades: readonly string[];
  readonly prices: readonly bigint[];
  private readonly byId = new Map<string, number>();
  private readonly byNumber = new Map<number, number>();

  /** `rows` must be in seat-number order. */
  constructor(
    readonly concertDateId: string,
    rows: readonly SeatFactsRow[],
  ) {
    this.ids = rows.map((row) => row.id);
    this.numbers = Int32Array.from(rows, (row) => row.number);
    this.grades = rows.map((row) => row.grade);
    this.prices = rows.map((row) => BigInt(row.price));
    rows.forEach((row, index) => {
      this.byId.set(row.id, index);
      this.byNumber.set(row.number, index);
    });
  }

  get size(): number {
    return this.ids.length;
  }

  /** The position of a seat in number order, or -1. */
  indexOfId(seatId: string): number {
    return this.byId.get(seatId) ?? -1;
  }

  /** The position of a seat number in number order, or -1. */
  indexOfNumber(number: number): number {
    return this.byNumber.get(number) ?? -1;
  }

  /** The first position whose seat number is greater than `number`. */
  firstAfter(number: number): number {
    let low = 0;
    let high = this.numbers.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.numbers[middle] ?? 0) <= number) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The facts of the seat at a position. */
  at(index: number): SeatFacts {
    return {
      id: this.ids[index] ?? "",
      concertDateId: this.concertDateId,
      number: this.numbers[index] ?? 0,
      grade: this.grades[index] ?? "",
      price: this.prices[index] ?? 0n,
    };
  }
}
