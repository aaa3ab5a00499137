import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** The repository's proto/ folder: the include dir every import is resolved from. */
const PROTO_ROOT = fileURLToPath(new URL("../../proto/", import.meta.url));

/** Every .proto under a folder, relative to {@link PROTO_ROOT}. */
function protoFilesUnder(folder: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(path.join(PROTO_ROOT, folder), { withFileTypes: true })) {
    const relative = path.posix.join(folder, entry.name);
    if (entry.isDirectory()) found.push(...protoFilesUnder(relative));
    else if (entry.name.endsWith(".proto")) found.push(relative);
  }
  return found;
}

let loaded: protoLoader.PackageDefinition | undefined;

/**
 * The package definition of the whole API (proto/stagedoor/** plus the
 * vendored health service), loaded the way a stock grpc-js client would:
 * int64 as strings, enums by name, defaults filled in, oneof names set.
 */
export function stagedoorPackageDefinition(): protoLoader.PackageDefinition {
  loaded ??= protoLoader.loadSync(
    [...protoFilesUnder("stagedoor"), "grpc/health/v1/health.proto"],
    {
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: [PROTO_ROOT],
    },
  );
  return loaded;
}

function methodDefinition(
  service: string,
  method: string,
): protoLoader.MethodDefinition<object, object> {
  const definition = stagedoorPackageDefinition()[service];
  if (definition === undefined || "format" in definition) {
    throw new Error(`${service} is not a service of the loaded protos`);
  }
  const found = (definition as protoLoader.ServiceDefinition)[method];
  if (found === undefined) throw new Error(`${service} has no method ${method}`);
  return found;
}

/** `authorization: Bearer <token>` metadata, or empty metadata without a token. */
export function grpcMetadata(token?: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** A grpc-js failure: the status code and the metadata it came with. */
export type GrpcJsError = grpc.ServiceError;

/** Whether a thrown value is a grpc-js status error. */
export function isGrpcJsError(error: unknown): error is GrpcJsError {
  return (
    error instanceof Error &&
    typeof (error as Partial<GrpcJsError>).code === "number" &&
    (error as Partial<GrpcJsError>).metadata instanceof grpc.Metadata
  );
}

/**
 * Decodes the rich error details (`grpc-status-details-bin`) a stock gRPC
 * client receives, with Connect's own trailer parser, so tests can read the
 * ErrorInfo a grpc-js caller would see.
 */
export function richError(error: GrpcJsError): ConnectError | undefined {
  const headers = new Headers();
  headers.set("grpc-status", String(error.code));
  headers.set("grpc-message", encodeURIComponent(error.details));
  const details = error.metadata.get("grpc-status-details-bin")[0];
  if (details !== undefined) {
    const bytes = typeof details === "string" ? Buffer.from(details, "binary") : details;
    headers.set("grpc-status-details-bin", bytes.toString("base64").replace(/=+$/, ""));
  }
  return findTrailerError(headers);
}

/**
 * A plain `@grpc/grpc-js` client for every service of the API over one
 * channel, with method definitions from `@grpc/proto-loader`: the same path a
 * third-party gRPC client takes, independent of the Connect SDK.
 */
export class GrpcJsClient {
  private readonly client: grpc.Client;

  constructor(baseUrl: string) {
    this.client = new grpc.Client(new URL(baseUrl).host, grpc.credentials.createInsecure());
  }

  /** One unary call; `service` is the full name, `method` the proto name. */
  unary<Res>(
    service: string,
    method: string,
    request: object,
    token?: string,
    metadata: grpc.Metadata = grpcMetadata(token),
  ): Promise<Res> {
    const definition = methodDefinition(service, method);
    return new Promise<Res>((resolve, reject) => {
      this.client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
        (error, response) => {
          if (error) reject(error);
          else resolve(response as Res);
        },
      );
    });
  }

  /** Opens a server stream; the caller reads it and cancels it. */
  serverStream(
    service: string,
    method: string,
    request: object,
    token?: string,
  ): grpc.ClientReadableStream<object> {
    const definition = methodDefinition(service, method);
    return this.client.makeServerStreamRequest(
      definition.path,
      definition.requestSerialize,
      definition.responseDeserialize,
      request,
      grpcMetadata(token),
    );
  }

  close(): void {
    this.client.close();
  }
}
