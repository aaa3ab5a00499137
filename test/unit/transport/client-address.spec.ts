import { expect } from "chai";
import type { TrustedProxy } from "../../../server/src/config.js";
import { loadConfig } from "../../../server/src/config.js";
import {
  addressBucket,
  clientAddress,
  parseAddress,
  TrustedProxies,
} from "../../../server/src/transport/client-address.js";

/** The trusted proxies `TRUSTED_PROXIES` would give. */
function proxies(list: string): TrustedProxies {
  const config = loadConfig({ TRUSTED_PROXIES: list });
  return new TrustedProxies(config.trustedProxies as TrustedProxy[]);
}

/** The client address as a plain string, for short assertions. */
function client(
  socket: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
): string | undefined {
  return clientAddress(socket, forwardedFor, trusted)?.address;
}

describe("client address", () => {
  describe("parseAddress", () => {
    it("reads IPv4, IPv6, IPv4-mapped IPv6, brackets, ports and zones", () => {
      const cases: [string, string | undefined][] = [
        ["203.0.113.7", "203.0.113.7"],
        [" 203.0.113.7 ", "203.0.113.7"],
        ["203.0.113.7:51234", "203.0.113.7"],
        ["::ffff:203.0.113.7", "203.0.113.7"],
        ["2001:DB8::1", "2001:db8::1"],
        ["[2001:db8::1]:443", "2001:db8::1"],
        ["fe80::1%eth0", "fe80::1"],
        ["unknown", undefined],
        ["_hidden", undefined],
        ["203.0.113.256", undefined],
        ["", undefined],
      ];
      for (const [raw, expected] of cases) {
        expect(parseAddress(raw)?.address, raw).to.equal(expected);
      }
    });

    it("buckets IPv6 clients by their /64 network and IPv4 clients by address", () => {
      const bucket = (raw: string) =>
        addressBucket(parseAddress(raw) ?? { address: "", family: "ipv4" });
      expect(bucket("2001:db8:a:b:1:2:3:4")).to.equal("2001:db8:a:b::/64");
      expect(bucket("2001:db8:a:b::ffff")).to.equal(bucket("2001:db8:a:b:1:2:3:4"));
      expect(bucket("2001:db8:a:c::1")).to.not.equal(bucket("2001:db8:a:b::1"));
      expect(bucket("2001:0db8:000a:000b::1")).to.equal("2001:db8:a:b::/64");
      expect(bucket("::1")).to.equal("0:0:0:0::/64");
      expect(bucket("64:ff9b::198.51.100.1")).to.equal("64:ff9b:0:0::/64");
      expect(bucket("::ffff:198.51.100.1")).to.equal("198.51.100.1");
      expect(bucket("198.51.100.1")).to.not.equal(bucket("198.51.100.2"));
    });
  });

  describe("X-Forwarded-For", () => {
    const none = proxies("");
    const lb = proxies("10.0.0.0/8, 2001:db8:ffff::/48");

    it("is ignored when no proxy is trusted: a client cannot choose its own address", () => {
      expect(client("198.51.100.9", "1.2.3.4", none)).to.equal("198.51.100.9");
      expect(client("10.0.0.5", "1.2.3.4", none)).to.equal("10.0.0.5");
    });

    it("is ignored (spoofed) when the socket's peer is not a trusted proxy", () => {
      expect(client("198.51.100.9", "10.0.0.1", lb)).to.equal("198.51.100.9");
      expect(client("198.51.100.9", "1.2.3.4, 10.0.0.7", lb)).to.equal("198.51.100.9");
    });

    it("gives the right-most untrusted address behind trusted proxies", () => {
      // The load balancer 10.0.0.5 appended the address it was connected from.
      expect(client("10.0.0.5", "203.0.113.7", lb)).to.equal("203.0.113.7");
      // The client wrote "1.2.3.4" itself; two trusted hops appended theirs.
      expect(client("10.0.0.5", "1.2.3.4, 203.0.113.7, 10.1.2.3", lb)).to.equal("203.0.113.7");
      expect(client("::ffff:10.0.0.5", "203.0.113.7", lb)).to.equal("203.0.113.7");
      expect(client("2001:db8:ffff:1::5", "[2001:db8:1::9]:4711", lb)).to.equal("2001:db8:1::9");
      // Several header lines (as HTTP/2 may hand them over) read as one list.
      expect(client("10.0.0.5", ["1.2.3.4", "203.0.113.7"], lb)).to.equal("203.0.113.7");
    });

    it("stops at the last trusted hop when an entry is not an address", () => {
      expect(client("10.0.0.5", "203.0.113.7, unknown", lb)).to.equal("10.0.0.5");
      expect(client("10.0.0.5", "garbage, 10.9.9.9", lb)).to.equal("10.9.9.9");
      expect(client("10.0.0.5", "", lb)).to.equal("10.0.0.5");
    });

    it("gives the left-most address when every hop is trusted", () => {
      expect(client("10.0.0.5", "10.1.1.1, 10.2.2.2", lb)).to.equal("10.1.1.1");
    });

    it("is not needed: the peer is the client without the header", () => {
      expect(client("10.0.0.5", undefined, lb)).to.equal("10.0.0.5");
      expect(client(undefined, "1.2.3.4", lb)).to.equal(undefined);
    });
  });
});
