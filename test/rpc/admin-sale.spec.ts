import { createHash, randomBytes } from "node:crypto";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient } from "@connectrpc/connect";
import {
  AdminService,
  OpeningDrawState,
  QueueTokenState,
  type StagedoorClient,
  type WatchQueueStatusResponse,
} from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { drawOrder } from "../../server/src/modules/queue/index.js";
import { bearer, clientFor, PROTOCOLS, transportFor } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import {
  expectRpcError,
  ms,
  must,
  newRequestId,
  pollUntil,
  startRpcServer,
  uniqueUser,
} from "./rpc-kit.js";

const KEY = randomBytes(24).toString("base64url");

/**
 * The sale settings over Connect, gRPC and gRPC-Web: a scheduled opening
 * whose lobby fans watch (LOBBY with the opening, then their drawn place,
 * then admission), the audit record of the draw, the emergency brake, and
 * the bad inputs. Each protocol works on a concert of its own.
 */
describe("rpc: AdminService sale settings (scheduled opening, pause and resume)", () => {
  let server: TestServer;
  let db: pg.Pool;

  before(async () => {
    server = await startRpcServer({
      env: { ADMIN_API_KEYS: `ops:${createHash("sha256").update(KEY).digest("hex")}` },
    });
    db = new pg.Pool({ connectionString: server.databaseUrl, max: 2 });
  });
  after(async () => {
    await db?.end();
    await server?.stop();
  });

  async function auditActions(concertId: string): Promise<string[]> {
    const { rows } = await db.query<{ action: string }>(
      "select action from admin_audit where target = $1 order by created_at, id",
      [`concert/${concertId}`],
    );
    return rows.map((row) => row.action);
  }

  for (const protocol of PROTOCOLS) {
    describe(`over ${protocol}`, () => {
      let ops: Client<typeof AdminService>;
      let fans: StagedoorClient;

      before(() => {
        ops = createClient(AdminService, transportFor(protocol, server.url, [bearer(KEY)]));
        fans = clientFor(protocol, server.url);
      });

      async function newConcert(): Promise<string> {
        const { concert } = await ops.createConcert({
          title: `Opening ${protocol}`,
          venue: "Olympic Hall",
          timeZone: "Asia/Seoul",
          requestId: newRequestId(),
        });
        return must(concert).id;
      }

      /** A stream whose events are collected as they come, until it ends. */
      function watch(token: string) {
        const events: WatchQueueStatusResponse["event"][] = [];
        const stream = clientFor(protocol, server.url, token).queue.watchQueueStatus({});
        const done = (async () => {
          for await (const message of stream) events.push(message.event);
        })();
        return { token, events, done };
      }

      /** A stream's first event after the lobby (heartbeats aside). */
      function pastLobby(w: ReturnType<typeof watch>) {
        return w.events
          .slice(1)
          .find(
            (e) =>
              e.case !== "heartbeat" &&
              !(e.case === "status" && e.value.state === QueueTokenState.LOBBY),
          );
      }

      it("opens a lobby, draws it at the opening and streams LOBBY, then the place, then admission", async () => {
        const concertId = await newConcert();
        const initial = await ops.getSaleSettings({ concertId });
        expect(initial.drawState).to.equal(OpeningDrawState.NONE);
        expect(initial.settings).to.deep.include({ maxAdmitted: 0, paused: false });
        await expectRpcError(ops.getOpeningDraw({ concertId }), {
          code: Code.NotFound,
          reason: "OPENING_DRAW_NOT_FOUND",
        });

        const opensAt = Date.now() + 2_000;
        const update = {
          requestId: newRequestId(),
          concertId,
          settings: {
            opensAt: timestampFromMs(opensAt),
            maxAdmitted: 1,
            admissionDuration: durationFromMs(120_000),
            holdDuration: durationFromMs(60_000),
          },
          updateMask: {
            paths: ["opens_at", "max_admitted", "admission_duration", "hold_duration"],
          },
        };
        const { settings } = await ops.updateSaleSettings(update);
        expect(ms(settings?.opensAt)).to.equal(opensAt);
        expect(settings?.maxAdmitted).to.equal(1);
        expect(Number(settings?.admissionDuration?.seconds)).to.equal(120);
        // A replay changes nothing and answers the same.
        expect((await ops.updateSaleSettings(update)).settings).to.deep.equal(settings);
        expect((await ops.getSaleSettings({ concertId })).drawState).to.equal(
          OpeningDrawState.PENDING,
        );

        const tokens: string[] = [];
        for (const label of ["a", "b", "c"]) {
          const issued = await fans.queue.issueQueueToken({
            concertId,
            userId: uniqueUser(`lobby-${label}-${protocol}`),
          });
          expect(issued.status?.state).to.equal(QueueTokenState.LOBBY);
          expect(issued.status?.position).to.equal(0n);
          expect(ms(issued.status?.opensAt)).to.equal(opensAt);
          tokens.push(issued.token);
        }
        const streams = tokens.map((token) => watch(token));

        // After the opening, the admitter draws; then fans leave one by one
        // so that everyone is admitted in the drawn order.
        await pollUntil(
          async () =>
            (await ops.getSaleSettings({ concertId })).drawState === OpeningDrawState.DRAWN,
          15_000,
          "the opening draw",
        );
        const draw = await ops.getOpeningDraw({ concertId });
        expect(draw.lobbySize).to.equal(3n);
        expect(draw.seed).to.match(/^[0-9a-f]{64}$/);
        expect(ms(draw.drawnAt)).to.be.at.least(opensAt);
        expect(draw.order).to.have.length(3);
        expect(draw.order).to.deep.equal(drawOrder(draw.seed, draw.order));
        const firstPage = await ops.getOpeningDraw({ concertId, pageSize: 2 });
        expect(firstPage.order).to.deep.equal(draw.order.slice(0, 2));
        const secondPage = await ops.getOpeningDraw({
          concertId,
          pageSize: 2,
          pageToken: firstPage.nextPageToken,
        });
        expect(secondPage.order).to.deep.equal(draw.order.slice(2));
        expect(secondPage.nextPageToken).to.equal("");
        const { rows } = await db.query<{ seed: string; token_ids: string[] }>(
          "select seed, token_ids from opening_draw where concert_id = $1",
          [concertId],
        );
        expect(rows).to.deep.equal([{ seed: draw.seed, token_ids: draw.order }]);

        // The opening no longer moves.
        await expectRpcError(
          ops.updateSaleSettings({
            ...update,
            requestId: newRequestId(),
            settings: { opensAt: timestampFromMs(opensAt + 60_000) },
            updateMask: { paths: ["opens_at"] },
          }),
          { code: Code.FailedPrecondition, reason: "SALE_ALREADY_OPENED" },
        );

        // Every stream moves past the lobby: to its drawn place, or admitted.
        await pollUntil(
          () => streams.every((w) => pastLobby(w) !== undefined),
          15_000,
          "every stream past the lobby",
        );
        const placeOf = (w: (typeof streams)[number]) => {
          const event = must(pastLobby(w));
          return event.case === "status" ? Number(event.value.position) : 0;
        };
        const byPlace = [...streams].sort((x, y) => placeOf(x) - placeOf(y));
        expect(byPlace.map(placeOf)).to.deep.equal([0, 1, 2]);
        // Fans leave in turn once admitted; the one drawn last moves to place 1.
        for (const [i, w] of byPlace.entries()) {
          await w.done;
          await clientFor(protocol, server.url, w.token).queue.leaveQueue({});
          const behind = byPlace[i + 2];
          if (behind !== undefined) {
            await pollUntil(
              () => {
                const last = behind.events.at(-1);
                return last?.case === "status" && last.value.position === 1n;
              },
              10_000,
              "the last drawn fan at place 1",
            );
          }
        }
        for (const w of streams) {
          const first = must(w.events[0]);
          expect(first.case === "status" && first.value.state).to.equal(QueueTokenState.LOBBY);
          expect(first.case === "status" && ms(first.value.opensAt)).to.equal(opensAt);
          expect(w.events.at(-1)?.case).to.equal("admitted");
        }
        const last = must(byPlace[2]).events.filter((e) => e.case !== "heartbeat");
        expect(
          last.map((e) =>
            e.case === "status" ? [e.value.state, Number(e.value.position)] : [e.case],
          ),
        ).to.deep.equal([
          [QueueTokenState.LOBBY, 0],
          [QueueTokenState.WAITING, 2],
          [QueueTokenState.WAITING, 1],
          ["admitted"],
        ]);
        expect(await auditActions(concertId)).to.deep.equal([
          "CreateConcert",
          "UpdateSaleSettings",
        ]);
      });

      it("pauses admission (tokens still issued, places kept) and resumes in order", async () => {
        const concertId = await newConcert();
        await ops.updateSaleSettings({
          requestId: newRequestId(),
          concertId,
          settings: { maxAdmitted: 1 },
          updateMask: { paths: ["max_admitted"] },
        });
        const first = await fans.queue.issueQueueToken({
          concertId,
          userId: uniqueUser(`brake-1-${protocol}`),
        });
        expect(first.status?.state).to.equal(QueueTokenState.ADMITTED);
        const paused = await ops.pauseAdmission({
          requestId: newRequestId(),
          concertId,
          reason: "payment provider incident",
        });
        expect(paused.settings?.paused).to.equal(true);
        const second = await fans.queue.issueQueueToken({
          concertId,
          userId: uniqueUser(`brake-2-${protocol}`),
        });
        expect(second.status?.state).to.equal(QueueTokenState.WAITING);
        expect(second.status?.admissionPaused).to.equal(true);
        // The first fan finishes; the slot is free, and still nobody is admitted.
        const me1 = clientFor(protocol, server.url, first.token);
        expect((await me1.queue.getQueueStatus({})).status?.state).to.equal(
          QueueTokenState.ADMITTED,
        );
        await me1.queue.leaveQueue({});
        await server.services.queue.promoteAll();
        const me2 = clientFor(protocol, server.url, second.token);
        const held = (await me2.queue.getQueueStatus({})).status;
        expect(held?.state).to.equal(QueueTokenState.WAITING);
        expect(held?.position).to.equal(1n);

        const resumed = await ops.resumeAdmission({ requestId: newRequestId(), concertId });
        expect(resumed.settings?.paused).to.equal(false);
        await pollUntil(
          async () =>
            (await me2.queue.getQueueStatus({})).status?.state === QueueTokenState.ADMITTED,
          10_000,
          "admission after resume",
        );
        expect((await me2.queue.getQueueStatus({})).status?.admissionPaused).to.equal(false);
        expect(await auditActions(concertId)).to.deep.equal([
          "CreateConcert",
          "UpdateSaleSettings",
          "PauseAdmission",
          "ResumeAdmission",
        ]);
      });

      it("refuses bad input and changes nothing", async () => {
        const concertId = await newConcert();
        const unknown = "00000000-0000-4000-8000-000000000000";
        const base = {
          requestId: newRequestId(),
          concertId,
          settings: { maxAdmitted: 5 },
          updateMask: { paths: ["max_admitted"] },
        };
        await expectRpcError(ops.updateSaleSettings({ ...base, concertId: unknown }), {
          code: Code.NotFound,
          reason: "CONCERT_NOT_FOUND",
        });
        await expectRpcError(
          ops.pauseAdmission({ requestId: newRequestId(), concertId: unknown }),
          {
            code: Code.NotFound,
            reason: "CONCERT_NOT_FOUND",
          },
        );
        await expectRpcError(ops.getSaleSettings({ concertId: unknown }), {
          code: Code.NotFound,
          reason: "CONCERT_NOT_FOUND",
        });
        await expectRpcError(ops.getOpeningDraw({ concertId: unknown }), {
          code: Code.NotFound,
          reason: "CONCERT_NOT_FOUND",
        });
        await expectRpcError(
          ops.updateSaleSettings({
            ...base,
            requestId: newRequestId(),
            settings: { admissionDuration: { seconds: -30n, nanos: 0 } },
            updateMask: { paths: ["admission_duration"] },
          }),
          {
            code: Code.InvalidArgument,
            reason: "INVALID_ARGUMENT",
            field: "settings.admission_duration",
          },
        );
        await expectRpcError(
          ops.updateSaleSettings({
            ...base,
            requestId: newRequestId(),
            settings: { holdDuration: durationFromMs(1_500) },
            updateMask: { paths: ["hold_duration"] },
          }),
          {
            code: Code.InvalidArgument,
            reason: "INVALID_ARGUMENT",
            field: "settings.hold_duration",
          },
        );
        await expectRpcError(
          ops.updateSaleSettings({
            ...base,
            requestId: newRequestId(),
            settings: { maxAdmitted: -1 },
          }),
          {
            code: Code.InvalidArgument,
            reason: "INVALID_ARGUMENT",
            field: "settings.max_admitted",
          },
        );
        await expectRpcError(
          ops.updateSaleSettings({ ...base, requestId: newRequestId(), updateMask: { paths: [] } }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "update_mask" },
        );
        await expectRpcError(
          ops.updateSaleSettings({
            ...base,
            requestId: newRequestId(),
            updateMask: { paths: ["paused"] },
          }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "update_mask" },
        );
        await expectRpcError(ops.updateSaleSettings({ ...base, requestId: "" }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "request_id",
        });
        await expectRpcError(ops.getOpeningDraw({ concertId, pageToken: "not-a-token" }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "page_token",
        });
        const anonymous = createClient(AdminService, transportFor(protocol, server.url));
        await expectRpcError(anonymous.pauseAdmission({ requestId: newRequestId(), concertId }), {
          code: Code.Unauthenticated,
          reason: "ADMIN_KEY_MISSING",
        });
        const after = await ops.getSaleSettings({ concertId });
        expect(after.settings).to.deep.include({ maxAdmitted: 0, paused: false });
        expect(await auditActions(concertId)).to.deep.equal(["CreateConcert"]);
      });
    });
  }
});
