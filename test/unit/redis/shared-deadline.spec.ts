import { expect } from "chai";
import {
  type DeadlineOptions,
  SharedCommandDeadline,
} from "../../../server/src/redis/shared-deadline.js";

/** A client that records the options of each view it hands out. */
class RecordingClient {
  readonly views: { options: DeadlineOptions }[] = [];

  withCommandOptions(options: DeadlineOptions): { options: DeadlineOptions } {
    const view = { options };
    this.views.push(view);
    return view;
  }
}

describe("SharedCommandDeadline", () => {
  it("hands out one view per second, each with no per-command timer and a live shared signal", () => {
    let now = 1_000_000;
    const client = new RecordingClient();
    const deadline = new SharedCommandDeadline(client, () => now);

    const first = deadline.commands();
    now += 999;
    expect(deadline.commands()).to.equal(first);
    now += 1;
    const second = deadline.commands();
    expect(second).to.not.equal(first);
    now += 5_000;
    const third = deadline.commands();

    expect(client.views).to.deep.equal([first, second, third]);
    for (const view of client.views) {
      expect(view.options.timeout).to.equal(0);
      expect(view.options.abortSignal.aborted).to.equal(false);
    }
    expect(new Set(client.views.map((view) => view.options.abortSignal)).size).to.equal(3);
  });

  it("lets any number of waiting commands listen to the shared signal without a leak warning", async () => {
    const client = new RecordingClient();
    const signal = new SharedCommandDeadline(client, () => 0).commands().options.abortSignal;
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    const listeners = Array.from({ length: 50 }, () => () => {});
    try {
      for (const listener of listeners) signal.addEventListener("abort", listener, { once: true });
      // Node emits its warnings on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      for (const listener of listeners) signal.removeEventListener("abort", listener);
      process.off("warning", onWarning);
    }
    expect(warnings.map((warning) => warning.name)).to.not.include("MaxListenersExceededWarning");
  });

  it("makes no view before the first command", () => {
    const client = new RecordingClient();
    new SharedCommandDeadline(client, () => 0);
    expect(client.views).to.have.length(0);
  });
});
