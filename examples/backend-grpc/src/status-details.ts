import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { type Any, AnySchema, anyIs, anyUnpack } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "@stagedoor/sdk";

/** The rich error model of one failed call: `google.rpc.Status` with its known details unpacked. */
export interface StatusDetails {
  readonly code: number;
  readonly message: string;
  readonly errorInfo: MessageShape<typeof ErrorInfoSchema> | undefined;
  readonly badRequest: MessageShape<typeof BadRequestSchema> | undefined;
  readonly retryInfo: MessageShape<typeof RetryInfoSchema> | undefined;
  /** The type URL of every detail, including ones this example does not unpack. */
  readonly typeUrls: readonly string[];
}

/**
 * Parses `google.rpc.Status { int32 code = 1; string message = 2; repeated
 * google.protobuf.Any details = 3; }`. The SDK ships the detail messages
 * (ErrorInfo, BadRequest, RetryInfo) but not Status itself, and three fields
 * are quicker to read off the wire than to vendor another .proto.
 */
function parseStatus(bytes: Uint8Array): { code: number; message: string; details: Any[] } {
  const reader = new BinaryReader(bytes);
  let code = 0;
  let message = "";
  const details: Any[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) code = reader.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) message = reader.string();
    else if (field === 3 && wireType === WireType.LengthDelimited) {
      details.push(fromBinary(AnySchema, reader.bytes()));
    } else reader.skip(wireType, field);
  }
  return { code, message, details };
}

function unpackFirst<Desc extends DescMessage>(
  details: readonly Any[],
  schema: Desc,
): MessageShape<Desc> | undefined {
  const found = details.find((detail) => anyIs(detail, schema));
  return found ? anyUnpack(found, schema) : undefined;
}

/**
 * Decodes the `grpc-status-details-bin` trailer of a failed grpc-js call,
 * where Stagedoor puts a `google.rpc.ErrorInfo` (the machine-readable reason,
 * e.g. `SEAT_UNAVAILABLE`), a `BadRequest` for invalid fields and a
 * `RetryInfo` when retrying helps. Returns undefined when the trailer is
 * absent (e.g. a deadline the client enforced on its own).
 *
 * @example
 * ```ts
 * const details = statusDetails(error);
 * if (details?.errorInfo?.reason === "SEAT_UNAVAILABLE") pickAnotherSeat();
 * ```
 */
export function statusDetails(error: grpc.ServiceError): StatusDetails | undefined {
  const [value] = error.metadata.get("grpc-status-details-bin");
  if (value === undefined) return undefined;
  // grpc-js hands `-bin` metadata over as a Buffer, already base64-decoded.
  const bytes = typeof value === "string" ? Buffer.from(value, "base64") : value;
  const status = parseStatus(bytes);
  return {
    code: status.code,
    message: status.message,
    errorInfo: unpackFirst(status.details, ErrorInfoSchema),
    badRequest: unpackFirst(status.details, BadRequestSchema),
    retryInfo: unpackFirst(status.details, RetryInfoSchema),
    typeUrls: status.details.map((detail) => detail.typeUrl),
  };
}
