/**
 * A function of a string, remembered: what a rush computes again and again
 * for the same few inputs (a concert's token part, the refusal of one hot
 * seat) is computed once. Past `max` inputs it starts again, so only memory
 * is bounded, never correctness: `compute` must be pure, and what it returns
 * is shared by every caller (treat it as read-only). A `compute` that throws
 * remembers nothing.
 */
export function remembered<T>(compute: (input: string) => T, max = 1024): (input: string) => T {
  const known = new Map<string, T>();
  return (input) => {
    let output = known.get(input);
    if (output === undefined) {
      output = compute(input);
      if (known.size >= max) known.clear();
      known.set(input, output);
    }
    return output;
  };
}
