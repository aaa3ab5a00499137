import { expect } from "chai";

/** One scrape: each sample's value by its series (`name{label="value",…}`, labels as printed). */
export type Scrape = ReadonlyMap<string, number>;

/** Parses the Prometheus text format's samples (comments skipped). */
export function parseScrape(text: string): Scrape {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** GETs `/metrics` of a metrics port, asserting a 200 in the text format; returns the body. */
export async function scrapeText(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).to.equal(200);
  expect(response.headers.get("content-type")).to.match(/^text\/plain/);
  return response.text();
}

/** The value of one series, 0 when it is absent (a counter not yet incremented). */
export function sample(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  const inner = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .join(",");
  return scrape.get(inner === "" ? name : `${name}{${inner}}`) ?? 0;
}
