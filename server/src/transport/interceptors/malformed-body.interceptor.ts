import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { malformedBodyKey } from "../connect-adapter.js";

/**
 * Answers `invalid_argument` for a call whose binary body did not parse (see
 * {@link malformedBodyKey}), before anything else looks at the request.
 */
export function createMalformedBodyInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (req.contextValues.get(malformedBodyKey)) {
      throw new ConnectError(
        `the request body is not a valid ${req.method.input.typeName} message`,
        Code.InvalidArgument,
      );
    }
    return next(req);
  };
}
