/** Bounds of what {@link remembered} keeps. */
export interface RememberedLimits {
  /** Inputs kept at most; past this many it starts again. */
  readonly max?: number;
  /** Longer inputs are computed every time and never kept. */
  readonly maxInputLength?: number;
}

/**
 * A function of a string, remembered: what a rush computes again and again
 * for the same few inputs (a concert's token part, the refusal of one hot
 * seat) is computed once. Only memory is bounded, never correctness: past
 * `max` inputs it starts again, and an input longer than `maxInputLength`
 * (which a caller may have chosen) is never kept, so what it holds stays
 * under `max × maxInputLength` characters plus the outputs. `compute` must
 * be pure, and what it returns is shared by every caller (treat it as
 * read-only). A `compute` that throws remembers nothing.
 */
export function remembered<T>(
  compute: (input: string) => T,
  { max = 1024, maxInputLength = 256 }: RememberedLimits = {},
): (input: string) => T {
  const known = new Map<string, T>();
  return (input) => {
    if (input.length > maxInputLength) return compute(input);
    let output = known.get(input);
    if (output === undefined) {
      output = compute(input);
      if (known.size >= max) known.clear();
      known.set(input, output);
    }
    return output;
  };
}
