import qrcode from "qrcode-generator";

/** Light modules around the symbol, as the QR specification asks for. */
const QUIET_ZONE = 4;

/**
 * Draws `text` as a QR code on a canvas (error correction M, alphanumeric
 * mode when the text allows it, as entry codes do: upper-case base32), each
 * module `cell` pixels wide, black on white with the quiet zone. Drawn in
 * the page, so no image is fetched and the page's CSP needs nothing new.
 */
export function qrCanvas(text: string, label: string, cell = 5): HTMLCanvasElement {
  const code = qrcode(0, "M");
  code.addData(text, /^[0-9A-Z $%*+\-./:]*$/.test(text) ? "Alphanumeric" : "Byte");
  code.make();
  const modules = code.getModuleCount();
  const size = (modules + 2 * QUIET_ZONE) * cell;
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const context = canvas.getContext("2d");
  if (context === null) return canvas;
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, size, size);
  context.fillStyle = "#000000";
  for (let row = 0; row < modules; row++) {
    for (let col = 0; col < modules; col++) {
      if (code.isDark(row, col)) {
        context.fillRect((col + QUIET_ZONE) * cell, (row + QUIET_ZONE) * cell, cell, cell);
      }
    }
  }
  return canvas;
}
