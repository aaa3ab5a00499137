/**
 * What the metrics cost a call: observing one finished call (counter and
 * histogram), a million times over three labels, and rendering one scrape.
 * Prints figures only. `npm run bench:metrics`.
 */
import { createMetrics } from "../../server/src/metrics/metrics.js";

const metrics = createMetrics();
const METHODS = [
  "stagedoor.v1.CatalogService/ListConcerts",
  "stagedoor.v1.ReservationService/HoldSeat",
  "POST /api/reservations",
];
const CALLS = 1_000_000;
for (let round = 1; round <= 3; round++) {
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) {
    metrics.observeCall(METHODS[i % 3] ?? "", i % 7 === 0 ? "failed_precondition" : "ok", 0.003);
  }
  const ns = ((performance.now() - started) * 1e6) / CALLS;
  console.log(`round ${round}: ${ns.toFixed(0)} ns per observed call`);
}
const started = performance.now();
const body = await metrics.render();
console.log(`one scrape: ${(performance.now() - started).toFixed(1)} ms, ${body.length} bytes`);
process.exit(0);
