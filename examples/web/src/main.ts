import { createApiClient } from "./api-client.js";
import { BoxOfficeApp } from "./app.js";
import { listenForAssertion, takeAssertionFromFragment } from "./assertion-handover.js";
import { readPageSettings } from "./page-settings.js";

// The page talks only to the server that served it (the content security
// policy allows nothing else), so its own origin is the API's base URL.
const root = document.getElementById("app");
if (root !== null) {
  const settings = readPageSettings(document);
  const app = new BoxOfficeApp(root, createApiClient(window.location.origin), settings);
  app.start(settings.auth === "hmac" ? takeAssertionFromFragment(window) : undefined);
  if (settings.auth === "hmac") {
    listenForAssertion(window, settings, (assertion) => app.receiveAssertion(assertion));
  }
}
