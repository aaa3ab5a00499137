/** Who a caller is: principals, queue-token derivation, user verifiers and operator keys. */
export { type AdminActor, type AdminKey, AdminKeyring } from "./admin-keys.js";
export {
  assertAdmitted,
  type Principal,
  type PrincipalState,
  type Reader,
} from "./principal.js";
export { type PresentedToken, TokenCodec } from "./token-codec.js";
export {
  HmacUserVerifier,
  signUserAssertion,
  TrustUserVerifier,
  type UserVerifier,
} from "./user-verifier.js";
