import { createHash } from "node:crypto";
import { expect } from "chai";
import { AdminKeyring } from "../../../server/src/modules/identity/index.js";
import { expectDomainError, thrownBy } from "../unit-helpers.js";

const sha256 = (key: string) => createHash("sha256").update(key, "utf8").digest();

describe("AdminKeyring", () => {
  const keyring = new AdminKeyring([
    { name: "ops", sha256: sha256("ops-key-0123456789") },
    { name: "support", sha256: sha256("support-key-ünïcode") },
  ]);

  it("names the operator of each configured key", () => {
    expect(keyring.enabled).to.equal(true);
    expect(keyring.authenticate("ops-key-0123456789")).to.deep.equal({ name: "ops" });
    expect(keyring.authenticate("support-key-ünïcode")).to.deep.equal({ name: "support" });
  });

  it("refuses a missing credential, and anything that is not a key", () => {
    for (const missing of [undefined, ""]) {
      expectDomainError(
        thrownBy(() => keyring.authenticate(missing)),
        "unauthenticated",
        "ADMIN_KEY_MISSING",
      );
    }
    for (const wrong of [
      "ops-key-012345678",
      "ops-key-0123456789 ",
      "OPS-KEY-0123456789",
      sha256("ops-key-0123456789").toString("hex"),
    ]) {
      expectDomainError(
        thrownBy(() => keyring.authenticate(wrong)),
        "unauthenticated",
        "ADMIN_KEY_INVALID",
      );
    }
  });

  it("is disabled without keys, and says so before looking at the credential", () => {
    const none = new AdminKeyring([]);
    expect(none.enabled).to.equal(false);
    for (const credential of [undefined, "ops-key-0123456789"]) {
      expectDomainError(
        thrownBy(() => none.authenticate(credential)),
        "failed_precondition",
        "ADMIN_API_DISABLED",
      );
    }
  });

  it("keeps no copy of what it was given, and refuses hashes of the wrong length", () => {
    const hash = sha256("k");
    const own = new AdminKeyring([{ name: "k", sha256: hash }]);
    hash.fill(0);
    expect(own.authenticate("k")).to.deep.equal({ name: "k" });
    expect(() => new AdminKeyring([{ name: "short", sha256: Buffer.alloc(16) }])).to.throw(
      /not a SHA-256/,
    );
  });
});
