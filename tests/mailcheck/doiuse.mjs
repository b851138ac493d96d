// doiuse-email (caniemail data) on HTML files: prints one JSON object per file, keyed by path,
// with the errors (features a client does not support), warnings and notes it found.
// Usage: node doiuse.mjs FILE...   (the clients are the four issue 12 names, below)
import { readFileSync } from "node:fs";
import { doIUseEmail } from "doiuse-email";

// Issue 12's clients in the package's own identifiers: every Gmail, classic Outlook on
// Windows, every Apple Mail, every Yahoo.
export const CLIENTS = ["gmail.*", "outlook.windows", "apple-mail.*", "yahoo.*"];

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node doiuse.mjs FILE...");
  process.exit(2);
}
const report = { clients: CLIENTS, files: {} };
for (const file of files) {
  const result = doIUseEmail(readFileSync(file, "utf8"), { emailClients: CLIENTS });
  report.files[file] = {
    errors: result.success ? [] : result.errors,
    warnings: result.warnings,
    notes: result.notes,
  };
}
process.stdout.write(JSON.stringify(report));
