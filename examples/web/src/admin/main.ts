import { AdminConsole } from "./admin-console.js";

// The console talks only to the server that served it (the content security
// policy allows nothing else), so its own origin is the API's base URL.
const root = document.getElementById("console");
if (root !== null) new AdminConsole(root, window.location.origin).start();
