import { expect } from "chai";
import { assertAdmitted, type Principal } from "../../../server/src/modules/identity/principal.js";
import { FakeClock } from "../../support/fake-clock.js";
import { expectThrowsDomain } from "../unit-helpers.js";

const CONCERT = "5a3e1c4b-1111-4222-8333-944455556666";
const OTHER_CONCERT = "5a3e1c4b-aaaa-4bbb-8ccc-9ddddeeeefff";
const ADMISSION_MS = 600_000;

describe("assertAdmitted", () => {
  let clock: FakeClock;

  beforeEach(() => {
    clock = new FakeClock();
  });

  function principal(overrides: Partial<Principal> = {}): Principal {
    return {
      userId: "alice",
      concertId: CONCERT,
      tokenId: "token-1",
      state: "admitted",
      admissionExpiresAt: new Date(clock.ms() + ADMISSION_MS),
      ...overrides,
    };
  }

  it("passes for an admitted principal before the admission ends, with or without a concert", () => {
    const admitted = principal();
    expect(() => assertAdmitted(admitted, clock.now())).not.to.throw();
    expect(() => assertAdmitted(admitted, clock.now(), CONCERT)).not.to.throw();
    clock.advance(ADMISSION_MS - 1);
    expect(() => assertAdmitted(admitted, clock.now(), CONCERT)).not.to.throw();
  });

  it("refuses a waiting principal with TOKEN_NOT_ADMITTED", () => {
    const error = expectThrowsDomain(
      () => assertAdmitted(principal({ state: "waiting", admissionExpiresAt: null }), clock.now()),
      "permission_denied",
      "TOKEN_NOT_ADMITTED",
    );
    expect(error.message).to.contain("waiting");
  });

  it("refuses a completed principal even before its admission would have ended", () => {
    const error = expectThrowsDomain(
      () => assertAdmitted(principal({ state: "completed" }), clock.now(), CONCERT),
      "permission_denied",
      "TOKEN_NOT_ADMITTED",
    );
    expect(error.message).to.contain("ended");
  });

  it("refuses an admission from the instant it ends", () => {
    const admitted = principal();
    clock.advance(ADMISSION_MS);
    expectThrowsDomain(
      () => assertAdmitted(admitted, clock.now(), CONCERT),
      "permission_denied",
      "TOKEN_NOT_ADMITTED",
    );
  });

  it("refuses an admitted principal without an admission end", () => {
    expectThrowsDomain(
      () => assertAdmitted(principal({ admissionExpiresAt: null }), clock.now()),
      "permission_denied",
      "TOKEN_NOT_ADMITTED",
    );
  });

  it("refuses another concert with TOKEN_WRONG_CONCERT naming that concert", () => {
    const error = expectThrowsDomain(
      () => assertAdmitted(principal(), clock.now(), OTHER_CONCERT),
      "permission_denied",
      "TOKEN_WRONG_CONCERT",
    );
    expect(error.metadata).to.deep.equal({ concert_id: OTHER_CONCERT });
  });

  it("checks the concert before the admission", () => {
    expectThrowsDomain(
      () =>
        assertAdmitted(
          principal({ state: "waiting", admissionExpiresAt: null }),
          clock.now(),
          OTHER_CONCERT,
        ),
      "permission_denied",
      "TOKEN_WRONG_CONCERT",
    );
  });
});
