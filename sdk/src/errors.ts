/** The `domain` of every `google.rpc.ErrorInfo` detail Stagedoor returns. */
export const ERROR_DOMAIN = "stagedoor.dev";
