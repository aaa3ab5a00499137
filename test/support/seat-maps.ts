/** A seat map of `count` seats in CSV, section Floor row A: VIP (150,000) then R (90,000). */
export function csvSeats(count: number): string {
  const lines = ["section,row,number,grade,price"];
  for (let n = 1; n <= count; n++) {
    const vip = n <= count / 2;
    lines.push(`Floor,A,${n},${vip ? "VIP" : "R"},${vip ? 150_000 : 90_000}`);
  }
  return lines.join("\n");
}

/** A seat map in CSV with two bad rows: line 3 repeats seat 1, line 4 has a negative price. */
export const BAD_CSV = [
  "section,row,number,grade,price",
  "Floor,A,1,VIP,150000",
  "Floor,A,1,VIP,150000",
  "Floor,A,3,R,-5",
].join("\n");
