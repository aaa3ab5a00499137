/**
 * An amount of money in minor units as the API's int64. Numbers are accepted
 * for convenience, but only safe integers: money is never rounded.
 */
export function minorUnits(amount: bigint | number): bigint {
  if (typeof amount === "number" && !Number.isSafeInteger(amount)) {
    throw new RangeError(`amount must be a safe integer of minor units, got ${amount}`);
  }
  return BigInt(amount);
}
