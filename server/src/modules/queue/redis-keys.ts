import type { GateDate } from "./seat-gate.js";

// Key layout of the waiting room and the seat gate in Redis (P = prefix,
// c = concert, d = one of its dates, tid = token id), kept in one place.
// Every key of one concert's line starts with the line's base `P{c}:`, so
// the `{c}` hash tag puts all of them in one Redis Cluster slot:
//   P{c}:t:<hash>    → tid, the auth lookup; exists exactly while the token authenticates
//   P{c}:s:<tid>     → hash {u, c, h, st, iat, aexp}; no TTL while waiting
//   P{c}:u:<user>    → tid, the user's current token for the concert
//   P{c}:q:w         ZSET waiting tids by arrival seq (P{c}:q:seq is the INCR counter)
//   P{c}:q:seen      ZSET waiting tids by last activity
//   P{c}:q:a         ZSET admitted tids by admission expiry
//   P{c}:q:ver       counter bumped when anyone leaves the waiting set
//   P{c}:q:avg       moving average admission duration (whole ms)
//   P{c}:q:dn        counter of departures from behind the head (leave, evict, revoke)
//   P{c}:q:dl        ZSET the last of those departures' arrival seqs, by departure count
//   P{c}:q:ds        ZSET those departures' seqs still above the head, by seq (line-digest.lua)
//   P{c}:q:reg       the line's registration lease (see below)
//   P{c}:q:cfg       hash {open, paused, max, ttl, hold, drawn}: the sale settings (configure.lua)
//   P{c}:q:lobby     ZSET token ids waiting for the opening draw, all scored 0 (so in byte order)
//   P{c}:q:draw      hash {at, seed, size}: the opening draw's record, written once
//   P{c}:q:dorder    LIST the lobby's token ids in drawn order
//   P{c}:g:<d>:s:<seat>  the seat gate (redis-seat-gate.ts): hash {v: seat row
//                        version, s: state, u: held until (ms), o: owner}
//   P{c}:g:<d>:v         hash {e: epoch (random, set when created), n: change counter}
//   P{c}:g:<d>:log       ZSET of "<n>|<seat>|<seat version>|<state>|<held until>" by n
//   P concerts       SET of concert ids with an open line: the admitter's registry
//
// A token names its concert (see identity/token-codec.ts), so a lookup goes
// straight to its line's slot. Each script declares the line's waiting set
// as KEYS[1] (which routes it to the slot's node on a cluster) and builds the
// other names from the base inside Lua, because most of them (one per popped
// or evicted token) are only known while the script runs; all of them share
// KEYS[1]'s slot, so Redis Cluster runs them. The client's own `keyPrefix`
// option must stay unset (it only prefixes declared keys). Needs Redis >= 6.2
// for ZADD GT.
//
// The registry is the one key outside the lines' slots, so no script touches
// it: `issue` renews the line's lease (SET NX PX) and says so, and only then
// does the store add the concert to the registry, in a second command; that
// happens once per lease, so the token path stays one round trip, and a lost
// SADD heals when the lease runs out. `retire` ends the lease once nobody
// waits, the store then removes the concert from the registry and adds it
// back if an issue renewed the lease meanwhile, so an open line is never left
// out of the registry for longer than a lease.

/** The base of every key of a concert's line: its `{concert}` hash tag makes them one slot. */
export function lineBase(prefix: string, concertId: string): string {
  return `${prefix}{${concertId}}:`;
}

/** The admitter's registry of concerts with an open line (a slot of its own). */
export function registryKey(prefix: string): string {
  return `${prefix}concerts`;
}

/** The line's set of admitted token ids, by admission expiry (read by the tests' samplers). */
export function admittedKey(prefix: string, concertId: string): string {
  return `${lineBase(prefix, concertId)}q:a`;
}

/** The line's version counter, read by the watchers (one GET per concert). */
export function versionKey(prefix: string, concertId: string): string {
  return `${lineBase(prefix, concertId)}q:ver`;
}

/** The line's registration lease, which `retire` checks again after leaving the registry. */
export function leaseKey(prefix: string, concertId: string): string {
  return `${lineBase(prefix, concertId)}q:reg`;
}

/** How long an issue's registration lasts before the next issue registers the line again (ms). */
export const REGISTRATION_LEASE_MS = 60_000;

/** The hash of one seat's gate entry. */
export function seatEntryKey(prefix: string, date: GateDate, seatId: string): string {
  return `${lineBase(prefix, date.concertId)}g:${date.dateId}:s:${seatId}`;
}

/** A date's change counter and epoch. */
export function dateVersionKey(prefix: string, date: GateDate): string {
  return `${lineBase(prefix, date.concertId)}g:${date.dateId}:v`;
}

/** A date's change log. */
export function dateLogKey(prefix: string, date: GateDate): string {
  return `${lineBase(prefix, date.concertId)}g:${date.dateId}:log`;
}
