/**
 * Reads the credential of an `Authorization: Bearer <credential>` header.
 * Returns undefined when there is none, so callers decide whether that is an
 * error.
 */
export function bearerCredential(authorization: string | null | undefined): string | undefined {
  if (!authorization) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  return match?.[1];
}
