import { createApiClient } from "./api-client.js";
import { BoxOfficeApp } from "./app.js";

// The page talks only to the server that served it (the content security
// policy allows nothing else), so its own origin is the API's base URL.
const root = document.getElementById("app");
if (root !== null) {
  new BoxOfficeApp(root, createApiClient(window.location.origin)).start();
}
