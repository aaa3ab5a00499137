#!/usr/bin/env node
// The `stagedoor-admin` command (the package's bin): see admin-cli.ts.
import { runAdminCli } from "./admin-cli.js";

const controller = new AbortController();
// The first Ctrl-C stops a `stats --watch` cleanly; a second one kills at once.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => controller.abort());
}
// No top-level await: the package's CommonJS build compiles this file too.
void runAdminCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
  signal: controller.signal,
}).then((code) => {
  process.exitCode = code;
});
