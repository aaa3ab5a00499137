/** Reads a whole-number knob from the environment, refusing nonsense instead of benchmarking it. */
export function intKnob(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`${name} must be a whole number ≥ ${min}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Reads a comma-separated knob from the environment. */
export function listKnob(name: string, fallback: string): string[] {
  return (process.env[name] || fallback)
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Reads a comma-separated list of whole numbers ≥ `min`. */
export function intListKnob(name: string, fallback: string, min = 1): number[] {
  return listKnob(name, fallback).map((item) => {
    const value = Number(item);
    if (!Number.isSafeInteger(value) || value < min) {
      throw new Error(`${name} must list whole numbers ≥ ${min}, not ${JSON.stringify(item)}`);
    }
    return value;
  });
}
