import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect } from "chai";
import { startRpcServer } from "../rpc/rpc-kit.js";
import type { TestServer } from "../support/test-server.js";

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const README = path.join(REPO, "sdk", "README.md");
/** The server URL the README's snippets use; the test swaps in its own server's. */
const PLACEHOLDER = "http://127.0.0.1:8080";
const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const RUN_TIMEOUT_MS = 60_000;

/** One ```ts block of the README. */
interface Snippet {
  readonly index: number;
  readonly heading: string;
  readonly code: string;
  /** Browser code only type-checks here: Node has no `document` to run it against. */
  readonly browser: boolean;
}

/** Every ```ts block, with the `##` heading it sits under. */
function extractSnippets(markdown: string): Snippet[] {
  const snippets: Snippet[] = [];
  let heading = "";
  let code: string[] | undefined;
  for (const line of markdown.split("\n")) {
    if (code === undefined) {
      if (line.startsWith("## ")) heading = line.slice(3).trim();
      else if (line.trim() === "```ts") code = [];
      continue;
    }
    if (line.trim() === "```") {
      const text = code.join("\n");
      snippets.push({
        index: snippets.length,
        heading,
        code: text,
        browser: text.includes('"@stagedoor/sdk/web"'),
      });
      code = undefined;
    } else {
      code.push(line);
    }
  }
  expect(code, "an unterminated ```ts block").to.equal(undefined);
  return snippets;
}

/** What a snippet promises to print: the text after `// →` on its lines. */
function expectedOutput(code: string): string[] {
  return code
    .split("\n")
    .map((line) => /\/\/ → (.+)$/.exec(line)?.[1]?.trim())
    .filter((text): text is string => text !== undefined && text.length > 0);
}

describe("SDK README snippets", () => {
  let server: TestServer;
  let dir: string;
  let snippets: Snippet[];

  before(async () => {
    snippets = extractSnippets(await readFile(README, "utf8"));
    server = await startRpcServer();
    // Outside the repository, with the repository's node_modules linked in:
    // `@stagedoor/sdk` resolves to the workspace package, as a user's would.
    dir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-readme-"));
    await symlink(path.join(REPO, "node_modules"), path.join(dir, "node_modules"), "dir");
    await writeFile(path.join(dir, "package.json"), JSON.stringify({ type: "module" }));
    await writeFile(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2023", "DOM"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          // The SDK's TypeScript sources, as the repository's own code uses them.
          customConditions: ["stagedoor-source"],
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ["node"],
        },
        include: ["*.ts"],
      }),
    );
  });

  after(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /**
   * The module a snippet runs as: the Node quick start stands alone, and the
   * later snippets continue it (as the README says), so they run after it.
   */
  function moduleOf(snippet: Snippet): string {
    const [quickStart] = snippets;
    const code =
      snippet.browser || snippet.index === 0 || quickStart === undefined
        ? snippet.code
        : `${quickStart.code}\n\n// ---- ${snippet.heading} ----\n${snippet.code}`;
    return code.replaceAll(PLACEHOLDER, server.url);
  }

  it("has a Node quick start to build on, a browser quick start, and the server placeholder", () => {
    expect(snippets.length).to.be.at.least(6);
    const [quickStart] = snippets;
    expect(quickStart?.heading).to.equal("Quick start: Node.js");
    expect(quickStart?.code).to.include(PLACEHOLDER);
    expect(quickStart?.code).to.include('"@stagedoor/sdk/node"');
    expect(snippets.filter((s) => s.browser).map((s) => s.heading)).to.deep.equal([
      "Quick start: browsers",
    ]);
    for (const snippet of snippets.slice(0, 2)) {
      expect(snippet.code.split("\n").length, snippet.heading).to.be.at.most(15);
    }
  });

  it("type-checks every snippet against the SDK", async () => {
    for (const snippet of snippets) {
      await writeFile(path.join(dir, `snippet-${snippet.index}.ts`), moduleOf(snippet));
    }
    try {
      await run(process.execPath, [TSC, "-p", dir], { cwd: dir, timeout: RUN_TIMEOUT_MS });
    } catch (error) {
      const { stdout = "" } = error as { stdout?: string };
      throw new Error(`the README snippets do not type-check:\n${stdout}`);
    }
  });

  it("runs every Node snippet against a live server and prints what it says", async () => {
    // The browser quick start is only type-checked (above): it needs a page.
    for (const snippet of snippets.filter((s) => !s.browser)) {
      const file = path.join(dir, `snippet-${snippet.index}.ts`);
      const code = moduleOf(snippet);
      expect(code, snippet.heading).to.not.include(":8080");
      await writeFile(file, code);
      let stdout: string;
      try {
        ({ stdout } = await run(
          process.execPath,
          ["--conditions=stagedoor-source", "--import", "tsx", file],
          { cwd: dir, timeout: RUN_TIMEOUT_MS },
        ));
      } catch (error) {
        const { stdout: out = "", stderr = "" } = error as { stdout?: string; stderr?: string };
        throw new Error(`snippet "${snippet.heading}" failed:\n${out}\n${stderr}`);
      }
      for (const text of expectedOutput(snippet.code)) {
        expect(stdout, `the output of "${snippet.heading}"`).to.include(text);
      }
    }
  });
});
