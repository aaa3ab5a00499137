import { h, replaceChildren } from "../dom.js";
import { describeError } from "../fan-error.js";
import { withRetry } from "../retry.js";
import { loadBalance } from "../wallet-balance.js";
import { holdBar } from "./hold-bar.js";
import { type Screen, type ScreenContext, screenHeading, screenSection } from "./screen.js";

/** One-tap top-up amounts, in whole won. */
const PRESETS: readonly bigint[] = [50_000n, 100_000n, 200_000n];
/** Digits only, at most a trillion won (the server enforces the real limits). */
const AMOUNT_PATTERN = /^\d{1,13}$/;

/**
 * Wallet: the balance, what is still missing for the held seat, and top-ups
 * (preset amounts, the exact shortfall, or any amount). Each top-up is one
 * logical action with one request id, reused if the fan taps the same amount
 * again after a failure, so a lost answer never adds the money twice.
 */
export function renderWalletScreen(ctx: ScreenContext): Screen {
  const heading = screenHeading(ctx.t("walletHeading"));
  const price = ctx.state.hold?.reservation.price;
  const balanceValue = h(
    "strong",
    { class: "balance-value", "data-testid": "wallet-balance" },
    "…",
  );
  const balanceNote = h("p", { class: "muted" });
  const presets = h("div", { class: "presets" });
  const amountInput = h("input", {
    id: "top-up-amount",
    name: "amount",
    type: "text",
    inputmode: "numeric",
    autocomplete: "off",
    "aria-describedby": "top-up-hint",
  });
  const amountProblem = h("p", { id: "top-up-error", class: "field-error", hidden: true });
  const customButton = h("button", { type: "submit", class: "secondary" }, ctx.t("topUpButton"));
  let balance: bigint | undefined;
  let busy = false;

  const showAmountProblem = (message: string | undefined) => {
    amountProblem.textContent = message ?? "";
    amountProblem.hidden = message === undefined;
    amountInput.setAttribute("aria-invalid", message === undefined ? "false" : "true");
    amountInput.setAttribute(
      "aria-describedby",
      message === undefined ? "top-up-hint" : "top-up-hint top-up-error",
    );
  };

  const paint = (exists: boolean) => {
    balanceValue.textContent = balance === undefined ? "…" : ctx.money(balance);
    const lines: string[] = [];
    if (!exists) lines.push(ctx.t("noWalletYet"));
    const shortfall = price !== undefined && balance !== undefined ? price - balance : undefined;
    if (shortfall !== undefined) {
      lines.push(
        shortfall > 0n
          ? ctx.t("needMore", { amount: ctx.money(shortfall) })
          : ctx.t("enoughBalance"),
      );
    }
    balanceNote.textContent = lines.join(" ");
    const amounts = [...PRESETS];
    if (shortfall !== undefined && shortfall > 0n && !amounts.includes(shortfall)) {
      amounts.unshift(shortfall);
    }
    replaceChildren(
      presets,
      ...amounts.map((amount) =>
        h(
          "button",
          {
            type: "button",
            class: amount === shortfall ? "preset preset-exact" : "preset",
            "data-testid": "top-up-preset",
            "data-amount": String(amount),
            onclick: () => topUp(amount),
          },
          amount === shortfall
            ? ctx.t("topUpExact", { amount: ctx.money(amount) })
            : ctx.t("topUpPreset", { amount: ctx.money(amount) }),
        ),
      ),
    );
  };

  const topUp = (amount: bigint) => {
    if (busy) return;
    const action = `recharge:${amount}`;
    busy = true;
    root.setAttribute("aria-busy", "true");
    ctx.task(async () => {
      try {
        const { wallet } = await withRetry(
          () =>
            ctx.stagedoor.wallet.rechargeWallet(
              { amount, requestId: ctx.actions.idFor(action) },
              { signal: ctx.signal },
            ),
          { signal: ctx.signal, onRetry: () => ctx.retrying() },
        );
        ctx.actions.done(action);
        balance = wallet?.balance ?? (balance ?? 0n) + amount;
        paint(true);
        amountInput.value = "";
        ctx.notify({
          key: "toppedUp",
          params: { amount: ctx.money(amount), balance: ctx.money(balance) },
          tone: "success",
        });
      } catch (error) {
        // A refusal is final; only an unanswered top-up keeps its request id for the next tap.
        if (!ctx.signal.aborted && !describeError(error).transient) ctx.actions.done(action);
        if (!ctx.signal.aborted && describeError(error).reason === "INVALID_ARGUMENT") {
          ctx.notify({ key: "errInvalidAmount", tone: "error" });
          return;
        }
        throw error;
      } finally {
        busy = false;
        root.removeAttribute("aria-busy");
      }
    });
  };

  const customForm = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const raw = amountInput.value.replace(/[\s,₩원]/g, "");
        if (!AMOUNT_PATTERN.test(raw) || BigInt(raw) < 1n) {
          showAmountProblem(ctx.t("amountInvalid"));
          amountInput.focus();
          return;
        }
        showAmountProblem(undefined);
        topUp(BigInt(raw));
      },
    },
    h("label", { for: "top-up-amount" }, ctx.t("customAmountLabel")),
    h("p", { id: "top-up-hint", class: "field-hint" }, ctx.t("customAmountHint")),
    h("div", { class: "inline-field" }, amountInput, customButton),
    amountProblem,
  );

  const root = screenSection(
    "wallet",
    heading,
    holdBar(ctx),
    h(
      "div",
      { class: "balance", "aria-live": "polite", "aria-atomic": "true" },
      h("p", {}, h("span", { class: "balance-label" }, ctx.t("labelBalance")), " ", balanceValue),
      balanceNote,
    ),
    h(
      "section",
      { class: "top-up", "aria-labelledby": "top-up-heading" },
      h("h2", { id: "top-up-heading" }, ctx.t("topUpHeading")),
      presets,
      customForm,
    ),
    h(
      "div",
      { class: "actions" },
      ctx.state.hold
        ? h(
            "button",
            { type: "button", class: "primary", onclick: () => ctx.go("pay") },
            ctx.t("goToPay"),
          )
        : null,
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => ctx.go("seat-map") },
        ctx.t("backToSeats"),
      ),
    ),
  );

  ctx.task(async () => {
    const loaded = await loadBalance(ctx.stagedoor, ctx.signal);
    balance = loaded.balance;
    paint(loaded.exists);
  });
  paint(true);
  return { root, heading };
}
