import net from "node:net";
import { expect } from "chai";
import { ephemeralRangeStart, freePort, portIsFree } from "../../support/ports.js";

/** Listens on `port` (127.0.0.1) until the returned function is called. */
async function occupy(port: number): Promise<() => Promise<void>> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A draw that returns the given values in turn, then Math.random's. */
function draws(...values: number[]): () => number {
  let i = 0;
  return () => values[i++] ?? Math.random();
}

const SPAN = 32_767 - 10_000 + 1;
/** The draw that lands on `port` (ephemeral range from 32768). */
const at = (port: number) => (port - 10_000 + 0.5) / SPAN;

describe("test ports (test/support/ports.ts)", () => {
  it("reads where the kernel's ephemeral range starts, and falls back to Linux's default", () => {
    expect(ephemeralRangeStart(() => "32768\t60999\n")).to.equal(32_768);
    expect(ephemeralRangeStart(() => "49152 65535")).to.equal(49_152);
    expect(ephemeralRangeStart(() => "garbage")).to.equal(32_768);
    expect(
      ephemeralRangeStart(() => {
        throw new Error("no /proc here");
      }),
    ).to.equal(32_768);
  });

  it("hands out ports below the ephemeral range only, bus offsets included", async () => {
    for (let i = 0; i < 20; i++) {
      const port = await freePort({ ephemeralStart: 32_768 });
      expect(port).to.be.within(10_000, 32_767);
      const node = await freePort({ ephemeralStart: 32_768, offsets: [10_000] });
      expect(node + 10_000).to.be.within(20_000, 32_767);
    }
    // The highest draw lands on the last port below the range (when that one is free), never in it.
    const lastFree = await portIsFree(32_767);
    const top = await freePort({ ephemeralStart: 32_768, random: draws(0.999_999_9) });
    expect(top).to.be.at.most(32_767);
    if (lastFree) expect(top).to.equal(32_767);
  });

  it("skips a port something listens on, and one whose offset port is taken", async () => {
    const busy = await freePort({ ephemeralStart: 32_768, random: () => 0.5 + Math.random() / 2 });
    const release = await occupy(busy);
    try {
      expect(await portIsFree(busy)).to.equal(false);
      const other = await freePort({ ephemeralStart: 32_768, taken: new Set([busy]) });
      // First draw: the busy port; second: a free one.
      const port = await freePort({ ephemeralStart: 32_768, random: draws(at(busy), at(other)) });
      expect(port).to.equal(other);
      // A port whose +1000 is the busy one is skipped as well.
      const below = busy - 1_000;
      const node = await freePort({
        ephemeralStart: 32_768,
        offsets: [1_000],
        random: draws(at(below)),
      });
      expect(node).to.not.equal(below);
    } finally {
      await release();
    }
    expect(await portIsFree(busy)).to.equal(true);
  });

  it("never hands out a port the caller marked taken", async () => {
    const port = await freePort({
      ephemeralStart: 32_768,
      taken: new Set([21_000]),
      random: draws(at(21_000), at(21_000)),
    });
    expect(port).to.not.equal(21_000);
  });

  it("refuses when the ephemeral range leaves no room below it", async () => {
    let error: unknown;
    try {
      await freePort({ ephemeralStart: 10_500, offsets: [10_000] });
    } catch (e) {
      error = e;
    }
    expect(String(error)).to.match(/no ports below the ephemeral range/);
  });
});
