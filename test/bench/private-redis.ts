import { spawn } from "node:child_process";
import net from "node:net";
import { freePort } from "../support/ports.js";
import type { Cleanup } from "./processes.js";

/** A redis-server of the benchmark's own, so its CPU is the benchmark's alone. */
export interface PrivateRedis {
  readonly url: string;
  readonly pid: number;
}

/**
 * Starts Debian's `redis-server` on a free loopback port, without
 * persistence, and registers its stop with `cleanup`.
 */
export async function startPrivateRedis(cleanup: Cleanup): Promise<PrivateRedis> {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  cleanup.defer("stop the private redis-server", async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error("redis-server did not start");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `redis://127.0.0.1:${port}/0`, pid: child.pid ?? 0 };
}
