import http2 from "node:http2";
import net from "node:net";
import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import { type HttpServer, startHttpServer } from "../../../server/src/transport/http-server.js";

describe("startHttpServer", () => {
  let server: HttpServer;
  /** Server-side sockets (local port = the server's) that had Nagle switched off. */
  const noDelay = new Set<number>();
  const original = net.Socket.prototype.setNoDelay;

  before(async () => {
    server = await startHttpServer({
      host: "127.0.0.1",
      port: 0,
      logger: createLogger("silent"),
      listener: (req, res) => {
        res.setHeader("x-remote-port", String(req.socket.remotePort));
        res.end(req.httpVersion);
      },
    });
    net.Socket.prototype.setNoDelay = function (this: net.Socket, enable?: boolean) {
      if (enable !== false && this.localPort === server.port && this.remotePort !== undefined) {
        noDelay.add(this.remotePort);
      }
      return original.call(this, enable);
    };
  });

  after(async () => {
    net.Socket.prototype.setNoDelay = original;
    await server?.close(250);
  });

  it("switches Nagle's algorithm off on HTTP/1.1 connections, as node:http does", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    expect(await res.text()).to.equal("1.1");
    const port = Number(res.headers.get("x-remote-port"));
    expect(noDelay.has(port), `socket from port ${port}`).to.equal(true);
  });

  it("leaves it off on HTTP/2 (h2c) connections too", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const { version, port } = await new Promise<{ version: string; port: number }>(
        (resolve, reject) => {
          const stream = session.request({ ":path": "/" });
          let body = "";
          let port = 0;
          stream.on("response", (headers) => {
            port = Number(headers["x-remote-port"]);
          });
          stream.setEncoding("utf8");
          stream.on("data", (chunk: string) => {
            body += chunk;
          });
          stream.on("end", () => resolve({ version: body, port }));
          stream.on("error", reject);
        },
      );
      expect(version).to.equal("2.0");
      expect(noDelay.has(port), `socket from port ${port}`).to.equal(true);
    } finally {
      session.close();
    }
  });
});
