import { create, type DescMethod } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  BadRequest_FieldViolationSchema,
  BadRequestSchema,
  ERROR_DOMAIN,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "@stagedoor/sdk";
import type { Logger } from "../../logger.js";
import { DomainError, type ErrorKind } from "../../shared/domain-error.js";
import { transientDomainError } from "../../shared/transient-errors.js";
import { malformedRequestError } from "../connect-adapter.js";

const CODES: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
};

/**
 * Turns a domain error into a ConnectError carrying a `google.rpc.ErrorInfo`
 * (stable reason + safe metadata), a `BadRequest` for invalid fields and a
 * `RetryInfo` when retrying helps.
 */
export function toConnectError(error: DomainError): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    {
      desc: ErrorInfoSchema,
      value: { reason: error.reason, domain: ERROR_DOMAIN, metadata: { ...error.metadata } },
    },
  ];
  if (error.violations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: {
        fieldViolations: error.violations.map((v) =>
          create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description }),
        ),
      },
    });
  }
  if (error.retryAfterMs !== undefined) {
    details.push({
      desc: RetryInfoSchema,
      value: { retryDelay: durationFromMs(error.retryAfterMs) },
    });
  }
  return new ConnectError(error.message, CODES[error.kind], undefined, details);
}

/**
 * The one place errors leave the server. Domain errors and recognised
 * transient database errors become typed Connect errors; Connect's own errors
 * pass through (a request body Connect could not read as a message becomes
 * `invalid_argument`, see `malformedRequestError`); anything else is a bug:
 * it is logged with its cause and the caller gets a bare `internal`, never
 * the message.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  const convert = (error: unknown, procedure: string, method: DescMethod): unknown => {
    if (error instanceof ConnectError) return malformedRequestError(error, method) ?? error;
    if (error instanceof DomainError) {
      if (error.kind === "unavailable" || error.kind === "aborted") {
        logger.warn(
          { err: error.cause ?? error, procedure, reason: error.reason },
          "transient failure",
        );
      }
      return toConnectError(error);
    }
    const transient = transientDomainError(error);
    if (transient) {
      logger.warn({ err: error, procedure, reason: transient.reason }, "transient failure");
      return toConnectError(transient);
    }
    logger.error({ err: error, procedure }, "unexpected error");
    return new ConnectError("internal error", Code.Internal);
  };

  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return {
        ...res,
        message: mapStreamErrors(res.message, (e) => convert(e, procedure, req.method)),
      };
    } catch (error) {
      throw convert(error, procedure, req.method);
    }
  };
}

async function* mapStreamErrors<O>(
  messages: AsyncIterable<O>,
  convert: (error: unknown) => unknown,
): AsyncIterable<O> {
  try {
    yield* messages;
  } catch (error) {
    throw convert(error);
  }
}
