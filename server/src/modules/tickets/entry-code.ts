import { createHmac, timingSafeEqual } from "node:crypto";
import { isUuid } from "../../shared/ids.js";

/** RFC 4648 base32: upper-case letters and 2-7, all in QR alphanumeric mode. */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ID_BYTES = 16;
/** 80 bits of HMAC-SHA256: forging one code takes 2^79 guesses on average. */
const MAC_BYTES = 10;
const CODE_BYTES = ID_BYTES + MAC_BYTES;
/** 208 bits in 5-bit characters (the last one carries 3 bits and two zero bits). */
export const ENTRY_CODE_LENGTH = Math.ceil((CODE_BYTES * 8) / 5);
/** Separates entry-code MACs from every other use of the key. */
const DOMAIN = "stagedoor/entry-code/v1\n";

function base32(bytes: Buffer): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** The bytes of a canonical base32 text, or null (bad letter, or non-zero padding bits). */
function unbase32(text: string): Buffer | null {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text) {
    const digit = ALPHABET.indexOf(char);
    if (digit < 0) return null;
    value = (value << 5) | digit;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
    value &= (1 << bits) - 1;
  }
  return value === 0 ? Buffer.from(bytes) : null;
}

/**
 * Signs and reads the entry codes of tickets.
 *
 * A code is base32 (42 characters, A-Z and 2-7, so a QR code stores it in
 * alphanumeric mode) of the ticket's id (its reservation's UUID, 16 bytes)
 * followed by the first 80 bits of HMAC-SHA256(key, domain + id). It says
 * which ticket it is without a lookup, and cannot be made for another ticket
 * without the key. Whether the ticket is still valid (not refunded, not used)
 * is the database's to say; a code is never stored.
 */
export class EntryCodes {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length < 32) throw new RangeError("the ticket signing key must be at least 32 bytes");
    this.#key = Buffer.from(key);
  }

  /** The entry code of a ticket (a reservation id). */
  codeFor(ticketId: string): string {
    if (!isUuid(ticketId)) throw new RangeError("a ticket id must be a UUID");
    const id = Buffer.from(ticketId.replaceAll("-", ""), "hex");
    return base32(Buffer.concat([id, this.mac(id)]));
  }

  /**
   * The ticket id a presented code names, or null when the code is not one
   * this key signed. Case, spaces and dashes are ignored (codes are read
   * out and typed at doors); the MAC is compared in constant time.
   */
  read(code: string): string | null {
    if (code.length > 4 * ENTRY_CODE_LENGTH) return null;
    const text = code.replace(/[\s-]/g, "").toUpperCase();
    if (text.length !== ENTRY_CODE_LENGTH) return null;
    const bytes = unbase32(text);
    if (bytes === null || bytes.length !== CODE_BYTES) return null;
    const id = bytes.subarray(0, ID_BYTES);
    const given = bytes.subarray(ID_BYTES);
    if (!timingSafeEqual(given, this.mac(id))) return null;
    const hex = id.toString("hex");
    const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    return isUuid(uuid) ? uuid : null;
  }

  private mac(id: Buffer): Buffer {
    return createHmac("sha256", this.#key)
      .update(DOMAIN)
      .update(id)
      .digest()
      .subarray(0, MAC_BYTES);
  }
}
