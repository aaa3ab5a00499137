// Loaded once before every test file (see .mocharc.json). Any unhandled
// rejection fails the run loudly instead of being swallowed.
process.on("unhandledRejection", (reason) => {
  console.error("unhandled rejection during tests:", reason);
  process.exitCode = 1;
});
