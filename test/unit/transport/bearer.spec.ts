import { expect } from "chai";
import { bearerCredential } from "../../../server/src/transport/bearer.js";

const TOKEN = `sdq_${"a1B2_-".repeat(7)}x`;

describe("bearerCredential", () => {
  it("reads the credential of a Bearer header", () => {
    expect(bearerCredential(`Bearer ${TOKEN}`)).to.equal(TOKEN);
  });

  it("accepts any case of the scheme, extra blanks and trailing blanks", () => {
    expect(bearerCredential(`bearer ${TOKEN}`)).to.equal(TOKEN);
    expect(bearerCredential(`BEARER ${TOKEN}`)).to.equal(TOKEN);
    expect(bearerCredential(`Bearer   ${TOKEN}`)).to.equal(TOKEN);
    expect(bearerCredential(`Bearer\t${TOKEN}`)).to.equal(TOKEN);
    expect(bearerCredential(`Bearer ${TOKEN} \t`)).to.equal(TOKEN);
  });

  it("keeps the credential exactly as sent (assertions contain dots)", () => {
    expect(bearerCredential("Bearer v1.YWxpY2U.1893456000.c2ln")).to.equal(
      "v1.YWxpY2U.1893456000.c2ln",
    );
  });

  for (const [name, header] of [
    ["no header", undefined],
    ["null", null],
    ["an empty header", ""],
    ["the scheme alone", "Bearer"],
    ["the scheme and a blank", "Bearer "],
    ["another scheme", `Basic ${TOKEN}`],
    ["a bare token", TOKEN],
    ["a scheme glued to the token", `Bearer${TOKEN}`],
    ["two credentials", `Bearer ${TOKEN} ${TOKEN}`],
    ["a leading blank", ` Bearer ${TOKEN}`],
    ["a newline inside", `Bearer ${TOKEN}\nX-Injected: 1`],
  ] as const) {
    it(`returns undefined for ${name}`, () => {
      expect(bearerCredential(header)).to.equal(undefined);
    });
  }
});
