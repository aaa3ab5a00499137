/** Who a caller is: principals, queue-token derivation and user verifiers. */
export { assertAdmitted, type Principal, type PrincipalState } from "./principal.js";
export { type PresentedToken, TokenCodec } from "./token-codec.js";
export {
  HmacUserVerifier,
  signUserAssertion,
  TrustUserVerifier,
  type UserVerifier,
} from "./user-verifier.js";
