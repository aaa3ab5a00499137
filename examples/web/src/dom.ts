/** What may be put inside an element: nodes and text (falsy values are skipped). */
export type Child = Node | string | null | undefined | false;

/** Attributes (set as strings; `false`/`undefined` leave them out) and `on…` event listeners. */
export type Props = Readonly<
  Record<string, string | number | boolean | undefined | ((event: Event) => void)>
>;

/**
 * Creates an element with attributes, listeners and children. Text always goes
 * in as text nodes, never as HTML, so a user id or a concert title can never
 * inject markup; and there are no inline styles, which the page's content
 * security policy would refuse.
 *
 * @example
 * ```ts
 * h("button", { type: "button", class: "primary", onclick: () => pay() }, "Pay");
 * ```
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else if (value !== false && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children (text as text nodes), skipping falsy ones. */
export function append(parent: Element, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child);
  }
}

/** Replaces an element's children. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}
