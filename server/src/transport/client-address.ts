import { BlockList, isIP } from "node:net";
import type { TrustedProxy } from "../config.js";

/** An IP address in its plain form, and its family. */
export interface IpAddress {
  readonly address: string;
  readonly family: "ipv4" | "ipv6";
}

const V4_MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const BRACKETED = /^\[([^\]]+)\](?::\d{1,5})?$/;
const V4_WITH_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/;

/**
 * An address as a socket or an `X-Forwarded-For` entry gives it, in plain
 * form: IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports)
 * as IPv4, without brackets, port or IPv6 zone; undefined when it is not an
 * IP address (`unknown`, an obfuscated identifier, garbage).
 */
export function parseAddress(raw: string | undefined): IpAddress | undefined {
  if (raw === undefined) return undefined;
  let text = raw.trim();
  text = BRACKETED.exec(text)?.[1] ?? V4_WITH_PORT.exec(text)?.[1] ?? text;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  text = V4_MAPPED.exec(text)?.[1] ?? text;
  switch (isIP(text)) {
    case 4:
      return { address: text, family: "ipv4" };
    case 6:
      return { address: text.toLowerCase(), family: "ipv6" };
    default:
      return undefined;
  }
}

/** The proxies whose `X-Forwarded-For` entries are believed (from `TRUSTED_PROXIES`). */
export class TrustedProxies {
  private readonly list: BlockList | undefined;

  constructor(proxies: readonly TrustedProxy[]) {
    if (proxies.length === 0) return;
    this.list = new BlockList();
    for (const proxy of proxies) this.list.addSubnet(proxy.address, proxy.prefix, proxy.family);
  }

  has(address: IpAddress): boolean {
    return this.list?.check(address.address, address.family) ?? false;
  }
}

/**
 * The client's address: the socket's peer, unless the peer is a trusted
 * proxy; then `X-Forwarded-For` is read from the right (each proxy appends
 * the address it was connected from), skipping trusted proxies, and the
 * first untrusted address is the client. Entries to its left were written by
 * the client and are never believed. An entry that is not an address stops
 * the walk at the last trusted hop. Without trusted proxies the header is
 * ignored, so a client cannot choose its own address.
 */
export function clientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | readonly string[] | undefined,
  trusted: TrustedProxies,
): IpAddress | undefined {
  const peer = parseAddress(socketAddress);
  if (peer === undefined || forwardedFor === undefined || !trusted.has(peer)) return peer;
  const hops = (typeof forwardedFor === "string" ? forwardedFor : forwardedFor.join(",")).split(
    ",",
  );
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseAddress(hops[i]);
    if (hop === undefined) break;
    client = hop;
    if (!trusted.has(hop)) break;
  }
  return client;
}

/**
 * The name of the rate-limit bucket of an address: IPv4 addresses as they
 * are, IPv6 addresses by their /64 network, since one subscriber is usually
 * given a whole /64 and can pick any address in it.
 */
export function addressBucket(address: IpAddress): string {
  if (address.family === "ipv4") return address.address;
  const groups = ipv6Groups(address.address);
  return `${groups.slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address, in hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const toGroups = (part: string): string[] => {
    if (part === "") return [];
    const pieces = part.split(":");
    const last = pieces.at(-1) ?? "";
    if (last.includes(".")) {
      const [a = 0, b = 0, c = 0, d = 0] = last.split(".").map(Number);
      pieces.splice(-1, 1, ((a << 8) | b).toString(16), ((c << 8) | d).toString(16));
    }
    return pieces.map((piece) => Number.parseInt(piece, 16).toString(16));
  };
  const gap = address.indexOf("::");
  if (gap < 0) return toGroups(address);
  const head = toGroups(address.slice(0, gap));
  const tail = toGroups(address.slice(gap + 2));
  return [...head, ...Array<string>(8 - head.length - tail.length).fill("0"), ...tail];
}
