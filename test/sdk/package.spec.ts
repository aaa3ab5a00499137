import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect } from "chai";
import { startRpcServer } from "../rpc/rpc-kit.js";
import type { TestServer } from "../support/test-server.js";

const execFileAsync = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SDK = path.join(REPO, "sdk");
/** The peers a user installs next to the SDK, pinned to what the repository tests with. */
const PEERS = [
  "@bufbuild/protobuf@2.13.0",
  "@connectrpc/connect@2.1.2",
  "@connectrpc/connect-node@2.1.2",
  // Only for type-checking the `./web` entry, whose declarations import it.
  "@connectrpc/connect-web@2.1.2",
  "@types/node@20.19.43",
  "typescript@5.9.3",
];
const STEP_TIMEOUT_MS = 120_000;

/**
 * The environment for child npm and node processes: without the npm_*
 * variables of an enclosing `npm test`, which would point the child npm at
 * the repository's workspace and configuration.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toLowerCase().startsWith("npm_")) env[key] = value;
  }
  return { ...env, ...extra };
}

/** Runs a command, failing with its output when it fails. */
async function run(
  command: string,
  args: string[],
  cwd: string,
  extraEnv: Record<string, string> = {},
): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, {
      cwd,
      env: cleanEnv(extraEnv),
      timeout: STEP_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(" ")} failed in ${cwd}:\n${stdout}\n${stderr}`);
  }
}

/** The module specifiers a built JavaScript file imports or requires. */
function specifiersOf(source: string): string[] {
  const patterns = [
    /\b(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\(\s*["']([^"']+)["']\s*\)/g,
  ];
  return patterns.flatMap((pattern) => [...source.matchAll(pattern)].map((m) => m[1] ?? ""));
}

/** Every file reachable from `entry` through relative imports, and every bare specifier seen. */
async function importGraph(entry: string): Promise<{ files: string[]; external: Set<string> }> {
  const files: string[] = [];
  const external = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop();
    if (file === undefined || files.includes(file)) continue;
    files.push(file);
    for (const specifier of specifiersOf(await readFile(file, "utf8"))) {
      if (specifier.startsWith(".")) queue.push(path.resolve(path.dirname(file), specifier));
      else external.add(specifier);
    }
  }
  return { files, external };
}

const ESM_SCRIPT = `
import { createStagedoorClient, errorReason, waitForAdmission } from "@stagedoor/sdk";
import { createNodeTransport } from "@stagedoor/sdk/node";

const baseUrl = process.env.STAGEDOOR_URL;
const stagedoor = createStagedoorClient({ baseUrl, transport: createNodeTransport });
const { concerts } = await stagedoor.catalog.listConcerts({});
const { token } = await stagedoor.queue.issueQueueToken({ concertId: concerts[0].id, userId: "esm-fan" });
const fan = createStagedoorClient({ baseUrl, transport: createNodeTransport, token });
const { expireTime } = await waitForAdmission(fan);
const { wallet } = await fan.wallet.getWallet({});
const reason = await fan.payment.getPayment({ paymentId: crypto.randomUUID() }).then(() => "none", errorReason);
console.log(JSON.stringify({
  resolved: import.meta.resolve("@stagedoor/sdk"),
  concerts: concerts.length,
  token: token.startsWith("sdq_"),
  admitted: expireTime > new Date(),
  balance: String(wallet.balance),
  reason,
}));
`;

const CJS_SCRIPT = `
const { createStagedoorClient, QueueTokenState } = require("@stagedoor/sdk");
const { createNodeTransport } = require("@stagedoor/sdk/node");

async function main() {
  const transport = createNodeTransport({ baseUrl: process.env.STAGEDOOR_URL, protocol: "grpc" });
  const stagedoor = createStagedoorClient(transport);
  const { concerts } = await stagedoor.catalog.listConcerts({});
  const { token, status } = await stagedoor.queue.issueQueueToken({ concertId: concerts[0].id, userId: "cjs-fan" });
  console.log(JSON.stringify({
    resolved: require.resolve("@stagedoor/sdk"),
    concerts: concerts.length,
    token: token.startsWith("sdq_"),
    admitted: status.state === QueueTokenState.ADMITTED,
  }));
}
main().catch((error) => { console.error(error); process.exitCode = 1; });
`;

/** Uses all three entries; the expect-errors prove the declarations are real types, not any. */
const CONSUMER = `
import {
  createStagedoorClient,
  errorReason,
  payReservation,
  QueueTokenState,
  type QueueUpdate,
  type StagedoorErrorReason,
  waitForAdmission,
} from "@stagedoor/sdk";
import { createNodeTransport } from "@stagedoor/sdk/node";
import { createWebTransport } from "@stagedoor/sdk/web";
import { createConnectTransport } from "@connectrpc/connect-web";

const node = createStagedoorClient({ baseUrl: "http://127.0.0.1:1", transport: createNodeTransport, token: () => undefined });
const web = createStagedoorClient({ baseUrl: "http://127.0.0.1:1", transport: createWebTransport });
export const plain = createStagedoorClient({ baseUrl: "/", transport: createConnectTransport, token: "t" });

export async function admittedAt(): Promise<string> {
  const updates: QueueUpdate[] = [];
  const { expireTime } = await waitForAdmission(node, { onUpdate: (u) => updates.push(u) });
  return \`\${expireTime.toISOString()} after \${updates.length} updates\`;
}

export async function pay(): Promise<bigint | undefined> {
  const { payment } = await payReservation(web, { reservationId: "r", amount: 80_000n });
  return payment?.amount;
}

export const reason: StagedoorErrorReason | undefined = errorReason(new Error("x"));
export const waiting: number = QueueTokenState.WAITING;

// @ts-expect-error an amount is a bigint or a number, never a string
void payReservation(web, { reservationId: "r", amount: "80000" });
// @ts-expect-error gRPC is not a browser protocol
createWebTransport({ baseUrl: "/", protocol: "grpc" });
`;

describe("SDK package (npm pack, installed into a fresh project)", () => {
  let server: TestServer;
  let work: string;
  let project: string;
  let tarball: string;
  let packedFiles: string[];

  before(async function () {
    // Packing builds the SDK and installing reads the npm cache: slow on a busy machine, bounded per step.
    this.timeout(3 * STEP_TIMEOUT_MS);
    work = await mkdtemp(path.join(os.tmpdir(), "stagedoor-sdk-pack-"));
    server = await startRpcServer();
    // `npm pack` runs the prepack script, which builds dist/ from scratch.
    const packed = JSON.parse(
      await run("npm", ["pack", "--json", "--pack-destination", work], SDK),
    ) as { filename: string; files: { path: string }[] }[];
    const [info] = packed;
    if (info === undefined) throw new Error("npm pack reported no package");
    tarball = path.join(work, path.basename(info.filename));
    packedFiles = info.files.map((f) => f.path).sort();

    project = path.join(work, "consumer");
    await mkdir(project);
    await writeFile(
      path.join(project, "package.json"),
      JSON.stringify({ name: "stagedoor-sdk-consumer", version: "1.0.0", private: true }),
    );
    await run(
      "npm",
      ["install", tarball, ...PEERS, "--no-audit", "--no-fund", "--prefer-offline"],
      project,
    );
  });

  after(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("packs only the build, the README and the LICENSE", () => {
    for (const file of packedFiles) {
      const allowed =
        ["package.json", "README.md", "LICENSE"].includes(file) || file.startsWith("dist/");
      expect(allowed, `unexpected file in the tarball: ${file}`).to.equal(true);
      expect(file, "no source maps").to.not.match(/\.map$/);
      expect(file, "no tests").to.not.match(/\.(spec|test)\./);
    }
    for (const entry of ["index", "node", "web"]) {
      for (const format of ["esm", "cjs"]) {
        expect(packedFiles).to.include(`dist/${format}/${entry}.js`);
        expect(packedFiles).to.include(`dist/${format}/${entry}.d.ts`);
      }
    }
    expect(packedFiles).to.include("dist/cjs/package.json");
    expect(packedFiles).to.include("dist/esm/gen/stagedoor/queue/v1/queue_service_pb.js");
  });

  it("is ready to publish: public, with provenance, its repository, and every export in the tarball", async () => {
    const manifest = JSON.parse(
      await readFile(
        path.join(project, "node_modules", "@stagedoor", "sdk", "package.json"),
        "utf8",
      ),
    ) as {
      private?: boolean;
      repository?: { type?: string; url?: string; directory?: string };
      publishConfig?: { access?: string; provenance?: boolean };
      exports: Record<string, unknown>;
    };
    expect(manifest.private).to.equal(undefined);
    // npm's provenance statement names the repository; it must be the one the SDK is built from.
    expect(manifest.repository).to.deep.include({ type: "git", directory: "sdk" });
    expect(manifest.repository?.url).to.match(/^git\+https:\/\/github\.com\/[^/]+\/[^/]+\.git$/);
    expect(manifest.publishConfig).to.deep.equal({ access: "public", provenance: true });
    // Every target a consumer's resolver can reach (all conditions but the repository's own
    // source condition) is a file of the tarball.
    const targets = (value: unknown): string[] =>
      typeof value === "string"
        ? [value]
        : Object.entries(value as Record<string, unknown>)
            .filter(([condition]) => condition !== "stagedoor-source")
            .flatMap(([, nested]) => targets(nested));
    const reachable = Object.values(manifest.exports).flatMap(targets);
    expect(reachable).to.include("./dist/esm/index.js");
    for (const target of reachable) {
      expect(packedFiles, `exports target ${target}`).to.include(target.replace(/^\.\//, ""));
    }
  });

  it("ships no source map references and installs without workspace links", async () => {
    const installed = path.join(project, "node_modules", "@stagedoor", "sdk");
    const manifest = JSON.parse(await readFile(path.join(installed, "package.json"), "utf8")) as {
      name: string;
    };
    expect(manifest.name).to.equal("@stagedoor/sdk");
    for (const file of packedFiles.filter((f) => f.endsWith(".js") || f.endsWith(".d.ts"))) {
      const text = await readFile(path.join(installed, file), "utf8");
      expect(text, file).to.not.include("sourceMappingURL");
    }
    const cjsMarker = JSON.parse(
      await readFile(path.join(installed, "dist", "cjs", "package.json"), "utf8"),
    ) as { type: string };
    expect(cjsMarker.type).to.equal("commonjs");
  });

  it("works from an ES module against a running server", async () => {
    await writeFile(path.join(project, "esm.mjs"), ESM_SCRIPT);
    const out = JSON.parse(
      await run(process.execPath, ["esm.mjs"], project, { STAGEDOOR_URL: server.url }),
    ) as Record<string, unknown>;
    expect(out.resolved).to.include("/node_modules/@stagedoor/sdk/dist/esm/index.js");
    expect(out).to.deep.include({
      concerts: 1,
      token: true,
      admitted: true,
      balance: "0",
      reason: "PAYMENT_NOT_FOUND",
    });
  });

  it("works from CommonJS against a running server", async () => {
    await writeFile(path.join(project, "cjs.cjs"), CJS_SCRIPT);
    const out = JSON.parse(
      await run(process.execPath, ["cjs.cjs"], project, { STAGEDOOR_URL: server.url }),
    ) as Record<string, unknown>;
    expect(out.resolved).to.include("/node_modules/@stagedoor/sdk/dist/cjs/index.js");
    expect(out).to.deep.include({ concerts: 1, token: true, admitted: true });
  });

  it("installs the stagedoor-admin bin, which runs from the tarball against a server", async () => {
    const bin = path.join(project, "node_modules", ".bin", "stagedoor-admin");
    const help = await run(bin, ["--help"], project);
    expect(help).to.include("usage: stagedoor-admin COMMAND");
    const listed = JSON.parse(
      await run(bin, ["concerts", "list", "--json"], project, { STAGEDOOR_URL: server.url }),
    ) as { concerts: { id: string }[] };
    expect(listed.concerts).to.have.length(1);
  });

  it("type-checks TypeScript consumers (NodeNext as ESM and CommonJS, and Bundler)", async () => {
    const tsc = path.join(project, "node_modules", "typescript", "bin", "tsc");
    const strict = {
      strict: true,
      noEmit: true,
      target: "ES2022",
      lib: ["ES2022", "DOM"],
      types: ["node"],
      // Check the SDK's declarations too, not only their use.
      skipLibCheck: false,
    };
    await writeFile(path.join(project, "consumer.mts"), CONSUMER);
    await writeFile(path.join(project, "consumer.cts"), CONSUMER);
    await writeFile(path.join(project, "consumer.ts"), CONSUMER);
    await writeFile(
      path.join(project, "tsconfig.nodenext.json"),
      JSON.stringify({
        compilerOptions: { ...strict, module: "NodeNext", moduleResolution: "NodeNext" },
        files: ["consumer.mts", "consumer.cts"],
      }),
    );
    await writeFile(
      path.join(project, "tsconfig.bundler.json"),
      JSON.stringify({
        compilerOptions: { ...strict, module: "ESNext", moduleResolution: "Bundler" },
        files: ["consumer.ts"],
      }),
    );
    // The trace shows which declarations each NodeNext consumer was given:
    // the CommonJS ones for consumer.cts, the ESM ones for consumer.mts.
    const trace = await run(
      process.execPath,
      [tsc, "-p", "tsconfig.nodenext.json", "--traceResolution"],
      project,
    );
    await run(process.execPath, [tsc, "-p", "tsconfig.bundler.json"], project);
    expect(trace).to.include("sdk/dist/cjs/index.d.ts");
    expect(trace).to.include("sdk/dist/esm/index.d.ts");
  });

  it("keeps the universal entry free of Node.js modules and Node transports", async () => {
    const installed = path.join(project, "node_modules", "@stagedoor", "sdk", "dist");
    for (const format of ["esm", "cjs"]) {
      const { files, external } = await importGraph(path.join(installed, format, "index.js"));
      expect(files.length, `${format}: files reached from index.js`).to.be.greaterThan(10);
      for (const specifier of external) {
        const builtin = specifier.startsWith("node:") || builtinModules.includes(specifier);
        expect(builtin, `${format} imports the Node built-in ${specifier}`).to.equal(false);
        expect(specifier, format).to.not.match(/^@connectrpc\/connect-(node|web)/);
      }
      expect([...external].sort()).to.include("@connectrpc/connect");
    }
  });
});
