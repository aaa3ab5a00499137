import { createHmac } from "node:crypto";
import { expect } from "chai";
import { ConfigError, loadConfig } from "../../../server/src/config.js";
import { createLogger } from "../../../server/src/logger.js";
import { OutboxRelay } from "../../../server/src/modules/events/index.js";
import {
  signWebhook,
  verifyWebhookSignature,
} from "../../../server/src/modules/events/signature.js";
import type { Database } from "../../../server/src/persistence/database.js";
import { FakeClock } from "../../support/fake-clock.js";
import { thrownBy } from "../unit-helpers.js";

const SECRET = "k".repeat(32);
const BODY = '{"id":"e1","type":"seat.held"}';

describe("events: webhook signatures", () => {
  it("signs t.body with HMAC-SHA256 as t=<unix>,v1=<hex>, and verifies it", () => {
    const header = signWebhook(SECRET, BODY, 1_900_000_000);
    const hex = createHmac("sha256", SECRET).update(`1900000000.${BODY}`).digest("hex");
    expect(header).to.equal(`t=1900000000,v1=${hex}`);
    expect(verifyWebhookSignature(SECRET, header, BODY, 1_900_000_010)).to.equal(true);
  });

  it("refuses a changed body, another secret, an old timestamp and malformed headers", () => {
    const header = signWebhook(SECRET, BODY, 1_900_000_000);
    expect(verifyWebhookSignature(SECRET, header, `${BODY} `, 1_900_000_000)).to.equal(false);
    expect(verifyWebhookSignature("x".repeat(32), header, BODY, 1_900_000_000)).to.equal(false);
    expect(verifyWebhookSignature(SECRET, header, BODY, 1_900_000_301)).to.equal(false);
    for (const bad of [undefined, "", "t=1900000000", "v1=abc", "t=x,v1=00"]) {
      expect(verifyWebhookSignature(SECRET, bad, BODY, 1_900_000_000), String(bad)).to.equal(false);
    }
  });
});

describe("events: configuration", () => {
  const base = { DATABASE_URL: "postgres://db.internal/stagedoor", AUTH_MODE: "trust" };

  it("publishes nowhere by default, retries for 72 hours and keeps delivered events a week", () => {
    const { events } = loadConfig(base);
    expect(events.natsUrl).to.equal(undefined);
    expect(events.webhookUrls).to.deep.equal([]);
    expect(events.retryMs).to.equal(72 * 3_600_000);
    expect(events.retentionMs).to.equal(168 * 3_600_000);
    expect(events.natsStream).to.equal("STAGEDOOR");
    expect(events.natsSubjectPrefix).to.equal("stagedoor");
  });

  it("needs a long WEBHOOK_SECRET with WEBHOOK_URLS, and refuses bad URLs and short retry windows", () => {
    const urls = "https://hooks.example/a, https://hooks.example/b";
    const cases: [Record<string, string>, RegExp][] = [
      [{ WEBHOOK_URLS: urls }, /^WEBHOOK_SECRET/],
      [{ WEBHOOK_URLS: urls, WEBHOOK_SECRET: "short" }, /^WEBHOOK_SECRET/],
      [{ WEBHOOK_URLS: "ftp://x.example/", WEBHOOK_SECRET: SECRET }, /^WEBHOOK_URLS/],
      [{ WEBHOOK_URLS: "https://u:p@x.example/", WEBHOOK_SECRET: SECRET }, /^WEBHOOK_URLS/],
      [
        { WEBHOOK_URLS: "https://x.example/,https://x.example/", WEBHOOK_SECRET: SECRET },
        /^WEBHOOK_URLS/,
      ],
      [{ WEBHOOK_RETRY_HOURS: "24" }, /^WEBHOOK_RETRY_HOURS/],
      [{ NATS_URL: "http://nats.example" }, /^NATS_URL/],
      [{ NATS_STREAM: "bad stream" }, /^NATS_STREAM/],
      [{ NATS_SUBJECT_PREFIX: "a.>" }, /^NATS_SUBJECT_PREFIX/],
    ];
    for (const [env, message] of cases) {
      const error = thrownBy(() => loadConfig({ ...base, ...env }));
      expect(error, JSON.stringify(env)).to.be.instanceOf(ConfigError);
      expect((error as Error).message).to.match(message);
    }
    const ok = loadConfig({ ...base, WEBHOOK_URLS: urls, WEBHOOK_SECRET: SECRET });
    expect(ok.events.webhookUrls).to.deep.equal([
      "https://hooks.example/a",
      "https://hooks.example/b",
    ]);
  });
});

describe("events: retry backoff", () => {
  it("doubles from the base up to the cap, and jitter takes at most half off", () => {
    let random = 0;
    const relay = new OutboxRelay(
      {} as Database,
      [],
      new FakeClock(),
      {
        retryMs: 72 * 3_600_000,
        retryBaseDelayMs: 1000,
        retryMaxDelayMs: 60_000,
        retentionMs: 3_600_000,
        random: () => random,
      },
      createLogger("silent"),
    );
    expect([1, 2, 3, 4, 7, 8, 50].map((n) => relay.backoffMs(n))).to.deep.equal([
      1000, 2000, 4000, 8000, 60_000, 60_000, 60_000,
    ]);
    random = 0.999_999;
    expect(relay.backoffMs(3)).to.equal(2000);
  });
});
