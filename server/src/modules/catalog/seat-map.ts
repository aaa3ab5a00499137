/** One seat of an imported seat map, checked. */
export interface SeatMapRow {
  /** The row's CSV line (header = 1) or 1-based position in the JSON array. */
  readonly line: number;
  readonly section: string;
  readonly row: string;
  readonly number: number;
  readonly grade: string;
  readonly price: bigint;
}

/** One bad row of a seat map. */
export interface SeatMapProblem {
  readonly line: number;
  /** The column at fault, or "" when the whole row is. */
  readonly field: string;
  readonly description: string;
}

/** A parsed seat map: the good rows, and every problem found. */
export interface ParsedSeatMap {
  readonly rows: readonly SeatMapRow[];
  readonly problems: readonly SeatMapProblem[];
}

export type SeatMapFormat = "csv" | "json";

/** The most seats one performance may have. */
export const MAX_SEATS = 100_000;
/** The highest price one seat may have (minor units). */
export const MAX_SEAT_PRICE = 1_000_000_000_000n;
/** The most problems reported; a file with more is surely the wrong file. */
export const MAX_PROBLEMS = 200;

const COLUMNS = ["section", "row", "number", "grade", "price"] as const;
type Column = (typeof COLUMNS)[number];

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Parses and checks a seat map in CSV or JSON. Every row is checked and every
 * problem reported (up to {@link MAX_PROBLEMS}), so an operator fixes a file
 * in one pass; the caller writes nothing unless `problems` is empty.
 */
export function parseSeatMap(format: SeatMapFormat, text: string): ParsedSeatMap {
  const problems: SeatMapProblem[] = [];
  const report = (line: number, field: string, description: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push({ line, field, description });
  };
  const records = format === "csv" ? csvRecords(text, report) : jsonRecords(text, report);
  const rows: SeatMapRow[] = [];
  const seen = new Map<number, number>();
  for (const record of records) {
    const row = checkRecord(record, report);
    if (row === undefined) continue;
    const first = seen.get(row.number);
    if (first !== undefined) {
      report(row.line, "number", `seat number ${row.number} is already on line ${first}`);
      continue;
    }
    seen.set(row.number, row.line);
    rows.push(row);
  }
  if (records.length === 0 && problems.length === 0) {
    report(format === "csv" ? 2 : 1, "", "the seat map has no seats");
  }
  if (rows.length > MAX_SEATS) {
    report(0, "", `a performance may have at most ${MAX_SEATS} seats`);
  }
  // In line order (the order of the file), whichever check found them.
  problems.sort((a, b) => a.line - b.line);
  return { rows: problems.length === 0 ? rows : [], problems };
}

type Report = (line: number, field: string, description: string) => void;

/** One row before its values are checked. */
interface RawRecord {
  readonly line: number;
  readonly values: Partial<Record<Column, unknown>>;
}

function checkRecord(record: RawRecord, report: Report): SeatMapRow | undefined {
  const { line, values } = record;
  let ok = true;
  const text = (column: Column, min: number, max: number): string => {
    const value = values[column];
    const string = typeof value === "string" ? value.trim() : undefined;
    if (string === undefined) {
      report(line, column, `${column} must be text`);
      ok = false;
      return "";
    }
    const length = [...string].length;
    if (length < min || length > max || !string.isWellFormed() || CONTROL.test(string)) {
      report(line, column, `${column} must be ${min} to ${max} printable characters`);
      ok = false;
    }
    return string;
  };
  const whole = (column: Column, max: bigint): bigint => {
    const value = values[column];
    const digits =
      typeof value === "number" && Number.isSafeInteger(value)
        ? String(value)
        : typeof value === "string"
          ? value.trim()
          : "";
    if (!/^\d{1,16}$/.test(digits) || BigInt(digits) < 1n || BigInt(digits) > max) {
      report(line, column, `${column} must be a whole number from 1 to ${max}`);
      ok = false;
      return 0n;
    }
    return BigInt(digits);
  };
  const section = text("section", 1, 40);
  const row = text("row", 1, 20);
  const number = whole("number", BigInt(MAX_SEATS));
  const grade = text("grade", 1, 20);
  const price = whole("price", MAX_SEAT_PRICE);
  return ok ? { line, section, row, number: Number(number), grade, price } : undefined;
}

function jsonRecords(text: string, report: Report): RawRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    report(0, "", `the text is not JSON (${(error as Error).message})`);
    return [];
  }
  if (!Array.isArray(parsed)) {
    report(0, "", "the JSON must be an array of seats");
    return [];
  }
  const records: RawRecord[] = [];
  for (const [index, item] of parsed.entries()) {
    const line = index + 1;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      report(line, "", "each seat must be an object");
      continue;
    }
    const unknown = Object.keys(item).filter(
      (key) => !(COLUMNS as readonly string[]).includes(key),
    );
    if (unknown.length > 0) {
      report(line, unknown[0] ?? "", `unknown key ${JSON.stringify(unknown[0])}`);
      continue;
    }
    records.push({ line, values: item as Partial<Record<Column, unknown>> });
  }
  return records;
}

function csvRecords(text: string, report: Report): RawRecord[] {
  const lines = splitCsv(text);
  const header = lines[0];
  if (header === undefined || header.fields.every((field) => field.trim() === "")) {
    report(1, "", `the first line must name the columns ${COLUMNS.join(",")}`);
    return [];
  }
  if (header.error !== undefined) {
    report(header.line, "", header.error);
    return [];
  }
  const names = header.fields.map((field) => field.trim().toLowerCase());
  const missing = COLUMNS.filter((column) => !names.includes(column));
  const extra = names.filter((name) => !(COLUMNS as readonly string[]).includes(name));
  if (missing.length > 0 || extra.length > 0 || new Set(names).size !== names.length) {
    report(1, "", `the header must name exactly the columns ${COLUMNS.join(",")}, once each`);
    return [];
  }
  const records: RawRecord[] = [];
  for (const record of lines.slice(1)) {
    if (record.fields.length === 1 && record.fields[0]?.trim() === "") continue; // blank line
    if (record.error !== undefined) {
      report(record.line, "", record.error);
      continue;
    }
    if (record.fields.length !== names.length) {
      report(
        record.line,
        "",
        `the line has ${record.fields.length} fields, the header ${names.length}`,
      );
      continue;
    }
    const values: Partial<Record<Column, unknown>> = {};
    names.forEach((name, i) => {
      values[name as Column] = record.fields[i];
    });
    records.push({ line: record.line, values });
  }
  return records;
}

interface CsvLine {
  readonly line: number;
  readonly fields: string[];
  readonly error?: string;
}

/**
 * Splits CSV text into lines of fields (RFC 4180: fields may be quoted with
 * double quotes, a quote inside one doubled; a quoted field may span lines,
 * and its record is numbered by the line it starts on).
 */
function splitCsv(text: string): CsvLine[] {
  const out: CsvLine[] = [];
  let fields: string[] = [];
  let field = "";
  let quoted = false;
  let afterQuote = false;
  let error: string | undefined;
  let line = 1;
  let start = 1;
  const endRecord = () => {
    fields.push(field);
    out.push(error === undefined ? { line: start, fields } : { line: start, fields, error });
    fields = [];
    field = "";
    error = undefined;
    afterQuote = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
          afterQuote = true;
        }
      } else {
        if (c === "\n") line++;
        field += c;
      }
      continue;
    }
    if (c === '"') {
      if (field.trim() !== "" || afterQuote) error ??= "a quote may only open a field";
      quoted = true;
      field = "";
    } else if (c === ",") {
      fields.push(field);
      field = "";
      afterQuote = false;
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      endRecord();
      line++;
      start = line;
    } else {
      if (afterQuote && c !== " " && c !== "\t") error ??= "text follows a closing quote";
      field += c;
    }
  }
  if (quoted) error ??= "a quoted field is never closed";
  if (field !== "" || fields.length > 0 || error !== undefined) endRecord();
  return out;
}
